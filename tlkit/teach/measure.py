"""Measure a network on the learner's own machine: speed and memory (lesson 02).

Published GMACs say how much arithmetic a network needs; how long it takes *here* depends on
the machine. These helpers measure it, one network at a time.
"""
from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn

from ..core.checks import integer
from ..core.device import as_device, running_on

__all__ = ["latency", "weights_megabytes", "peak_memory_megabytes"]


@torch.no_grad()
def latency(model: nn.Module, *, size: int = 224, batch_size: int = 1, repeats: int = 5,
            device: torch.device | str = "cpu") -> float:
    """Median seconds for one forward pass of a ``batch_size`` × 3 × ``size`` × ``size`` batch.

    One warm-up pass first: the first call pays for memory allocation and kernel selection.
    Example: ``tlkit.latency(model, size=224)``
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"latency takes a torch nn.Module, got {type(model).__name__}")
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise TypeError("latency times a network that takes images (N, 3, size, size); this one "
                        "has no convolutions (a head?): time the whole backbone instead")
    size = integer("size", size, min=1)
    batch_size = integer("batch_size", batch_size, min=1)
    repeats = integer("repeats", repeats, min=1)
    device = as_device(device)
    x = torch.randn(batch_size, 3, size, size, device=device)
    times = []
    with running_on(model.eval(), device):  # the device rule: see tlkit/core/device.py
        model(x)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def weights_megabytes(model: nn.Module) -> float:
    """Memory held by the parameters and buffers, in MB (float32: 4 bytes per number).

    Example: ``tlkit.weights_megabytes(model)``
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"weights_megabytes takes a torch nn.Module, got {type(model).__name__}")
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def peak_memory_megabytes() -> float:
    """Peak resident memory of this Python process so far, in MB (Linux and macOS).

    Example: ``tlkit.peak_memory_megabytes()``
    """
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if os.uname().sysname == "Darwin" else peak / 1e3  # bytes vs. KiB

