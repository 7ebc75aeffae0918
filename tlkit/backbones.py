"""Pretrained backbones: one registry, one factory, one contract.

Every backbone — whatever its architecture — comes back as a :class:`Backbone` with

* ``blocks``: the convolutional body as a few *stages*, one per feature-map resolution
  (stem + early … late), so "unfreeze the last 2 blocks" means the same thing everywhere;
* ``neck``: global pooling (and, for VGG / MobileNetV3, the fully connected layers before the
  last), ending in a vector of ``num_features`` numbers — the *features*;
* ``head``: the final classifier, replaced with ``reset_head(n)``;
* ``weights``: a :class:`~tlkit.weights.Weights` with ``pretrained``, ``transforms()`` and ``meta``.

Example::

    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", num_classes=2)
    features = model.forward_features(batch)      # (N, 1280)
"""
from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ._zoo import REGISTRY as _REGISTRY
from .weights import Weights

__all__ = ["Backbone", "get_backbone", "list_backbones", "backbone_weights"]


class Backbone(nn.Module):
    """A pretrained network split into ``blocks`` → ``neck`` → ``head``."""

    def __init__(self, *, name: str, blocks: list[nn.Module], neck: nn.Module, head: nn.Module,
                 num_features: int, weights: Weights) -> None:
        super().__init__()
        self.name = name
        self.blocks = nn.Sequential(*blocks)
        self.neck = neck
        self.head = head
        self.num_features = num_features
        self.weights = weights
        # "frozen": batch-norm layers whose parameters are all frozen stay in eval mode during
        # training (their running statistics are kept); "train": they follow model.train().
        self.bn_mode = "frozen"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) → feature vectors (N, num_features)."""
        return self.neck(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, early to late (what the layers "see")."""
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def reset_head(self, num_classes: int, *, dropout: float = 0.0) -> nn.Module:
        """Put a new, randomly initialised head for ``num_classes`` (0: no head)."""
        if num_classes == 0:
            self.head = nn.Identity()
        else:
            linear = nn.Linear(self.num_features, num_classes)
            self.head = nn.Sequential(nn.Dropout(dropout), linear) if dropout else linear
        return self.head

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if mode and self.bn_mode == "frozen":
            for m in self.modules():
                params = list(m.parameters(recurse=False))
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and params and not any(
                        p.requires_grad for p in params):
                    m.eval()
        return self

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, weights={self.weights.name!r}, "
                f"num_features={self.num_features}, blocks={len(self.blocks)}")


# ---------------------------------------------------------------------------------------------
# The factory.

def list_backbones(offline: bool = False, *, cache_dir: str | Path | None = None) -> list[str]:
    """Names of the registered backbones; ``offline=True``: only those whose ImageNet weights
    load right now without a network.

    Example::

        tlkit.list_backbones(offline=True)   # ['efficientnet_lite0', ...]
    """
    names = list(_REGISTRY)
    if offline:
        names = [n for n in names if _REGISTRY[n].weights.is_available(cache_dir)]
    return names


def backbone_weights(name: str) -> Weights:
    """The ImageNet :class:`Weights` of ``name`` (transforms and meta) without building it."""
    return _entry(name).weights


def get_backbone(name: str, *, weights: str | None = "imagenet", num_classes: int | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True,
                 **unexpected) -> Backbone:
    """Build a registered backbone, with its ImageNet weights or randomly initialised.

    ``num_classes``: None keeps the 1000-way ImageNet head, an int puts a new head of that
    size, 0 removes the head (``model(x)`` then returns features).

    Example::

        model = tlkit.get_backbone("resnet50", weights="imagenet", num_classes=10)
        preprocess = model.weights.transforms()
    """
    if "pretrained" in unexpected:
        raise TypeError("get_backbone() takes weights='imagenet' or weights=None, not "
                        "pretrained= (torchvision replaced pretrained=True the same way)")
    if unexpected:
        raise TypeError(f"get_backbone() got unexpected arguments {sorted(unexpected)}")
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 0):
        raise ValueError(f"num_classes must be None, 0 or a positive int, got {num_classes!r}")
    entry = _entry(name)
    network = entry.build()
    if weights == "imagenet":
        state = entry.weights.state_dict(model_name=name, cache_dir=cache_dir, progress=progress)
        entry.load(network, state)
        chosen = entry.weights
    else:
        chosen = replace(entry.weights, name=f"{name}.random", pretrained=False, url=None,
                         local_file=None, meta={**entry.weights.meta, "categories": None})
    body, neck, head = entry.cut(network)
    blocks = _group_by_resolution(body)
    model = Backbone(name=name, blocks=blocks, neck=neck, head=head,
                     num_features=_in_features(head), weights=chosen)
    model.eval()
    if num_classes is not None:
        model.reset_head(num_classes)
    return model


def _entry(name: str) -> _Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    hint = ""
    if "nasnet" in name.lower() and name.lower() != "mnasnet1_0":
        hint = (" torchvision has no NASNet. NAS-designed networks registered here: mnasnet1_0, "
                "efficientnet_b0, efficientnet_lite0."
                + (" timm has NASNet-A Large: timm.create_model('nasnetalarge', pretrained=True)"
                   " (downloads its weights)." if _timm_has("nasnetalarge") else ""))
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    if close:
        hint += f" Did you mean {', '.join(close)}?"
    raise ValueError(f"Unknown backbone {name!r}.{hint} Available: {', '.join(_REGISTRY)}")


def _timm_has(name: str) -> bool:
    try:
        import timm
        return name in timm.list_models(name)
    except ImportError:
        return False


def _in_features(head: nn.Module) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[-1].in_features


@torch.no_grad()
def _group_by_resolution(body: list[nn.Module], probe: int = 64) -> list[nn.Module]:
    """Cut a flat list of layers into stages: a new stage starts where resolution drops.

    That gives every architecture the same 5 stages (stem, then 4 resolutions), so
    ``freeze_to`` and discriminative learning rates mean the same thing for all of them.
    """
    was_training = [m.training for m in body]
    for m in body:
        m.eval()
    x = torch.zeros(1, 3, probe, probe)
    stages: list[list[nn.Module]] = []
    for layer in body:
        size = x.shape[-1]
        x = layer(x)
        if not stages or x.shape[-1] < size:
            stages.append([layer])
        else:
            stages[-1].append(layer)
    for m, mode in zip(body, was_training):
        m.train(mode)
    # A stage with no parameters (a lone max-pool) joins its neighbour.
    merged: list[list[nn.Module]] = []
    for stage in stages:
        has_params = any(True for m in stage for _ in m.parameters())
        if merged and not has_params:
            merged[-1].extend(stage)
        else:
            merged.append(stage)
    return [s[0] if len(s) == 1 else nn.Sequential(*s) for s in merged]
