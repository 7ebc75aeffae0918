"""Learning: the training loop and its history and checkpoints, the hand-written SGD step,
cached features, the fine-tuning recipe and batch-norm adaptation.
Builds on :mod:`tlkit.core`, :mod:`tlkit.data` and :mod:`tlkit.models`; never on teaching code.
"""
