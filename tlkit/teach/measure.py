"""Measure a network on the learner's own machine: arithmetic, speed and memory (lesson 02).

Published GMACs say how much arithmetic a network needs at the resolution it was trained at;
``gmacs`` counts it at the resolution you use. How long it takes *here* depends on the machine
(``latency``). Memory has two parts: the weights (``weights_megabytes``) and, while training,
the activations autograd keeps for the backward pass (``activation_megabytes``).
"""
from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn

from ..core.checks import integer
from ..core.device import as_device, running_on

__all__ = ["gmacs", "activation_megabytes", "latency", "weights_megabytes",
           "peak_memory_megabytes"]


def _images_network(model: nn.Module, function: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{function} takes a torch nn.Module, got {type(model).__name__}")
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise TypeError(f"{function} measures a network that takes images (N, 3, size, size); "
                        "this one has no convolutions (a head?): measure the whole backbone")


def _forward_on_meta(model: nn.Module, *, batch_size: int, size: int, train: bool):
    """One forward pass with every tensor on PyTorch's "meta" device: shapes only, no numbers,
    no memory, no time — and the network's own weights and statistics are never touched."""
    from torch.func import functional_call

    state = {name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
             for name, t in [*model.named_parameters(), *model.named_buffers()]}
    was_training = model.training
    try:
        model.train(train)
        return state, functional_call(model, state, (torch.empty(batch_size, 3, size, size,
                                                                  device="meta"),))
    finally:
        model.train(was_training)


def gmacs(model: nn.Module, *, size: int = 224) -> float:
    """Billions of multiply-accumulates for one ``size`` × ``size`` image, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs).

    Example: ``tlkit.gmacs(model, size=128)``
    """
    from torch.utils.flop_counter import FlopCounterMode

    _images_network(model, "gmacs")
    size = integer("size", size, min=1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        _forward_on_meta(model, batch_size=1, size=size, train=False)
    return counter.get_total_flops() / 2e9


def activation_megabytes(model: nn.Module, *, size: int = 224, batch_size: int = 8) -> float:
    """MB of activations one training step keeps for its backward pass, for a batch of
    ``batch_size`` × 3 × ``size`` × ``size``: the tensors autograd saves during a training-mode
    forward pass, each counted once. Frozen layers save less: it measures the model as it is
    set. Training needs this on top of the weights, their gradients and the optimizer's state.

    Example: ``tlkit.activation_megabytes(model, size=128, batch_size=8)``
    """
    _images_network(model, "activation_megabytes")
    size = integer("size", size, min=1)
    batch_size = integer("batch_size", batch_size, min=1)
    saved: dict[int, int] = {}   # storage → bytes: a tensor saved by two layers counts once
    alive = []                   # meta tensors cost nothing; alive, no storage id is reused

    def pack(t: torch.Tensor) -> None:
        alive.append(t.detach())
        saved[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda _: None):
        state, _ = _forward_on_meta(model, batch_size=batch_size, size=size, train=True)
    for weight in state.values():  # the weights are counted apart (weights_megabytes)
        saved.pop(weight.untyped_storage()._cdata, None)
    return sum(saved.values()) / 1e6


@torch.no_grad()
def latency(model: nn.Module, *, size: int = 224, batch_size: int = 1, repeats: int = 5,
            device: torch.device | str = "cpu") -> float:
    """Median seconds for one forward pass of a ``batch_size`` × 3 × ``size`` × ``size`` batch.

    One warm-up pass first: the first call pays for memory allocation and kernel selection.
    Example: ``tlkit.latency(model, size=224)``
    """
    _images_network(model, "latency")
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

