"""Data: the one data-set type, the offline and downloadable sets by name, a learner's own
image folder, and the safe downloader they share. Builds only on :mod:`tlkit.core`.
"""
