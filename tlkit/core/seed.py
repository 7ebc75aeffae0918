"""One call that makes a run repeatable: seed Python, NumPy and PyTorch together."""
from __future__ import annotations

import random

from .checks import integer

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so every run of a lesson prints the same numbers.

    Example: ``tlkit.seed_everything(0)``
    """
    import numpy as np
    import torch

    seed = integer("seed", seed, min=0, max=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
