"""The first code cell of every lesson: seed, find the device, pick offline or full mode.

Offline (the default) every lesson runs on a laptop CPU in about a minute with data and
weights that ship with pip. ``FULL = True`` in the first cell — or ``TLKIT_FULL=1`` in the
environment — switches to the downloaded data sets and larger backbones, for a GPU (Colab).

Example (the top of a lesson)::

    FULL = False
    import tlkit
    course = tlkit.setup(full=FULL)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..core.checks import flag
from ..core.device import available_cpus, default_device, environment, one_blas_thread
from ..core.seed import seed_everything

__all__ = ["setup", "Setup"]


@dataclass(frozen=True)
class Setup:
    """What a lesson needs to know about where it runs."""

    full: bool
    device: torch.device
    environment: str  # "colab", "binder" or "local"
    seed: int

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"


def setup(*, full: bool = False, seed: int = 0, quiet: bool = False) -> Setup:
    """Seed everything, report the device, and decide offline vs. full mode.

    Example: ``course = tlkit.setup(full=False)``
    """
    full, quiet = flag("full", full), flag("quiet", quiet)  # "False" in quotes would be True
    seed_everything(seed)
    full = full or os.environ.get("TLKIT_FULL", "").strip().lower() in ("1", "true", "yes")
    device = default_device()
    where = environment()
    if device.type == "cpu":
        # More threads than usable CPUs (Binder: 1 CPU on a many-core host) makes torch's
        # threads wait for each other: use exactly the CPUs this process may use.
        torch.set_num_threads(available_cpus())
    one_blas_thread()  # scikit-learn's small fits: one BLAS thread is several times faster
    course = Setup(full=full, device=device, environment=where, seed=seed)
    if not quiet:
        print(_message(course))
    return course


def _message(course: Setup) -> str:
    mode = "FULL (downloaded data sets, larger backbones)" if course.full else \
        "offline default (data and weights that ship with pip)"
    lines = [f"running on: {course.environment}, device: {course.device}; mode: {mode}"]
    if course.full and not course.gpu:
        lines.append("FULL mode without a GPU will be slow (minutes per cell); on Colab choose "
                     "Runtime → Change runtime type → GPU, or set FULL = False.")
    elif course.gpu and not course.full:
        lines.append("A GPU is available: set FULL = True in the first cell (or TLKIT_FULL=1) "
                     "to run the full data sets and larger backbones.")
    elif not course.gpu and course.environment == "colab":
        lines.append("This Colab runtime has no GPU: the lesson keeps to the offline default. "
                     "For the full version choose Runtime → Change runtime type → GPU.")
    return "\n".join(lines)
