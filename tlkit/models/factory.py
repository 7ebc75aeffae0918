"""The one factory: every registered backbone, by name, with its ImageNet weights or random.

Example::

    tlkit.list_backbones(offline=True)                     # what loads without a network now
    model = tlkit.get_backbone("resnet50", weights="imagenet", num_classes=10)
    preprocess = model.weights.transforms()
"""
from __future__ import annotations

import difflib
import os
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..core.checks import describe, first_line, flag, integer
from .backbone import Backbone
from .weights import BadWeightsFile, Weights
from .zoo import REGISTRY as _REGISTRY
from .zoo import Entry

__all__ = ["get_backbone", "list_backbones", "backbone_weights"]


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
    """The ImageNet :class:`Weights` of ``name`` (transforms and meta) without building it.

    Example: ``tlkit.backbone_weights("resnet50").transforms()``
    """
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
    if isinstance(weights, str) and weights.lower() == "imagenet":
        weights = "imagenet"
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None (random), got {describe(weights)}")
    if num_classes is not None:
        num_classes = integer("num_classes", num_classes, min=0,
                              hint="None keeps the ImageNet head, 0 removes it, n puts a new one")
    progress = flag("progress", progress)
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path, got {describe(cache_dir)}")
    entry = _entry(name)
    network = entry.build()
    if weights == "imagenet":
        state = entry.weights.state_dict(model_name=name, cache_dir=cache_dir, progress=progress)
        try:
            entry.load(network, state)
        except (RuntimeError, KeyError, ValueError) as err:
            path = entry.weights.file_path(cache_dir)
            raise BadWeightsFile(entry.weights.bad_file_message(
                model_name=name, path=path,
                why=f"it holds the weights of another network ({first_line(err)})")) from None
        chosen = entry.weights
    else:
        chosen = replace(entry.weights, name=f"{name}.random", pretrained=False, url=None,
                         local_file=None, meta={**entry.weights.meta, "categories": None})
    body, neck, head = entry.cut(network)
    blocks = _group_by_resolution(body)
    model = Backbone(name=name, blocks=blocks, neck=neck, head=head,
                     num_features=_in_features(head), weights=chosen,
                     min_size=_smallest_input(blocks))
    model.eval()
    if num_classes is not None:
        model.reset_head(num_classes)
    return model


def _entry(name: str) -> Entry:
    if not isinstance(name, str):
        raise TypeError(f"the backbone name must be a string such as 'resnet50', got "
                        f"{describe(name)}; tlkit.list_backbones() lists them")
    if name in _REGISTRY:
        return _REGISTRY[name]
    hint = ""
    if "nasnet" in name.lower() and name.lower() != "mnasnet1_0":
        hint = (" torchvision has no NASNet. NAS-designed networks registered here: mnasnet1_0, "
                "efficientnet_b0, efficientnet_lite0/1/2."
                + (" timm has NASNet-A Large: timm.create_model('nasnetalarge', pretrained=True)"
                   " (downloads its weights)." if _timm_has("nasnetalarge") else ""))
    close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3)
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


@torch.no_grad()
def _smallest_input(blocks: list[nn.Module]) -> int:
    """The smallest square side (a power of two) the blocks accept, found by trying.

    Tiny probes, so it costs a few milliseconds: VGG's five max-pools give 32, networks
    whose layers pad (ResNet, EfficientNet) accept any size.
    """
    modes = [m.training for m in blocks]
    for m in blocks:
        m.eval()
    try:
        for side in (1, 2, 4, 8, 16, 32, 64):
            try:
                x = torch.zeros(1, 3, side, side)
                for block in blocks:
                    x = block(x)
                return side
            except RuntimeError:
                continue
        return 64
    finally:
        for m, mode in zip(blocks, modes):
            m.train(mode)
