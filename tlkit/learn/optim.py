"""The optimizer ``fit`` builds: only trainable parameters, a Backbone's in its layer groups.

Frozen parameters never reach the optimizer, so weight decay or momentum cannot move them, and
``lr=slice(lo, hi)`` spreads rates over a Backbone's groups (discriminative rates, lesson 05).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..core.checks import choice
from ..models.backbone import Backbone
from ..models.surgery import group_learning_rates, param_groups

__all__ = ["make_optimizer"]


def make_optimizer(model: nn.Module, optimizer: str | Callable, lr: float | slice,
                    momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """fit's optimizer over the trainable parameters; a Backbone's in its layer groups.

    Example: ``make_optimizer(model, "adam", slice(1e-5, 1e-3), 0.9, 0.0)``
    """
    if isinstance(model, Backbone):
        groups = param_groups(model, lr=lr, weight_decay=weight_decay)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("every parameter of the model is frozen: nothing to train")
        groups = [{"params": params, "lr": group_learning_rates(lr, 1)[0],
                   "weight_decay": weight_decay}]
    if callable(optimizer):
        return optimizer(groups)
    choice("optimizer", optimizer, ("sgd", "adam", "adamw"),
           hint="or a function that builds one from the groups, e.g. "
                "optimizer=lambda groups: torch.optim.Adam(groups)")
    if optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=momentum)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer](groups)
