"""Models: the backbone contract, the registry and its factory, weights with their
preprocessing, surgery (freeze, heads, parameter groups) and a small CNN from scratch.
Builds on :mod:`tlkit.core` and :mod:`tlkit.data` (the downloader).
"""
