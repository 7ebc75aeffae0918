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

from ..core.checks import integer
from ..core.device import as_device, running_on
from .inputs import Data, as_dataset, batches

__all__ = ["adapt_batchnorm"]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, data: Data, *, batch_size: int = 64,
                    device: torch.device | str | None = None) -> nn.Module:
    """Replace every batch-norm layer's running statistics with those of ``data``.

    Labels in ``data`` are ignored. Weights are not touched; only ``running_mean`` and
    ``running_var`` change. The model is left in eval mode.

    Example: ``tlkit.adapt_batchnorm(model, target_images)``
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"adapt_batchnorm takes a torch nn.Module, got {type(model).__name__}")
    batch_size = integer("batch_size", batch_size, min=2,
                         hint="batch statistics need at least 2 images per batch")
    device = as_device(device)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("the model has no batch-norm layers: there are no statistics to adapt")
    dataset = as_dataset(data, name="data", labelled=False)
    if len(dataset) < 2:  # before any statistic is reset: a refused call changes nothing
        raise ValueError("adapt_batchnorm needs at least 2 target images to measure statistics")
    model.eval()
    saved = [(m, m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None = a plain average over all batches, not an EMA
        m.train()  # only the batch-norm layers: dropout stays off
    # Shuffled (with a fixed seed): tlkit's data sets are sorted by class, and batches of one
    # class would average within-class variances, too small for the whole target set. A lone
    # last image is dropped: batch statistics of one image are undefined.
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0),
        drop_last=len(dataset) > batch_size and len(dataset) % batch_size == 1)
    try:
        with running_on(model, device):  # the device rule: see tlkit/core/device.py
            for x, _ in batches(loader, name="data"):
                model(x.to(device))
    except BaseException:
        for m, _, stats in saved:  # a failed batch must not leave half-adapted statistics
            m.load_state_dict(stats)
        raise
    finally:
        for m, momentum, _ in saved:
            m.momentum = momentum
            m.eval()
    return model
