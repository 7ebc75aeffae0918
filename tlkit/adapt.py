"""Transductive transfer: adapt batch-norm statistics to unlabelled target images (lesson 01).

A network trained on one domain normalises every layer with the mean and variance it saw
there. When the target images are shifted (darker, blurrier, another camera), those
statistics are wrong. Recomputing them on the unlabelled target set — no labels, no gradient
step — often recovers much of the lost accuracy (Li et al., "AdaBN", 2016).

Example::

    tlkit.adapt_batchnorm(model, unlabelled_target)   # only running means/variances change
"""
from __future__ import annotations

import torch
from torch import nn

from .device import default_device
from .train import Data, _as_dataset

__all__ = ["adapt_batchnorm"]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, data: Data, *, batch_size: int = 64,
                    device: torch.device | str | None = None) -> nn.Module:
    """Replace every batch-norm layer's running statistics with those of ``data``.

    Labels in ``data`` are ignored. Weights are not touched; only ``running_mean`` and
    ``running_var`` change. The model is left in eval mode.
    """
    device = torch.device(device) if device is not None else default_device()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("the model has no batch-norm layers: there are no statistics to adapt")
    saved = [(m, m.momentum) for m in norms]
    model.eval().to(device)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None = a plain average over all batches, not an EMA
        m.train()  # only the batch-norm layers: dropout stays off
    loader = torch.utils.data.DataLoader(_as_dataset(data), batch_size=batch_size)
    for x, _ in loader:
        model(x.to(device))
    for m, momentum in saved:
        m.momentum = momentum
        m.eval()
    return model
