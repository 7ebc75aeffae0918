"""Checks for ex02_freeze_and_head: freeze a pretrained backbone, new head, count parameters.

The student writes ``build_classifier(num_classes)`` (Lite0 with its ImageNet weights, every
backbone parameter frozen, a new trainable head) and ``count_trainable(model)``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import Arrays, Check, CheckFailed, register

IMAGE = 64  # small images: the check is about structure, not accuracy


def _num_classes(seed: int) -> int:
    return int(np.random.default_rng(seed).integers(2, 10))


def _mlp(seed: int) -> nn.Module:
    """A random small network with some layers frozen: the same on both sides."""
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(2, 9, size=rng.integers(3, 6))]
    layers = [nn.Linear(a, b, bias=bool(rng.integers(0, 2))) for a, b in zip(widths, widths[1:])]
    # Some frozen, some not — the first layer always frozen, the last always trainable.
    for i, layer in enumerate(layers):
        layer.requires_grad_(i == len(layers) - 1 or (i > 0 and bool(rng.integers(0, 2))))
    return nn.Sequential(*layers)


def _count_probe(ns: dict, seed: int) -> Arrays:
    return {"count": np.array(int(ns["count_trainable"](_mlp(seed))))}


def _count_verify(arrays: Arrays, seed: int) -> str:
    model = _mlp(seed)
    want = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    got = int(arrays["count"])
    if got == total and want != total:
        raise CheckFailed(f"count_trainable counted all {total} parameters; only those with "
                          f"requires_grad=True ({want}) train.")
    if got != want:
        raise CheckFailed(f"count_trainable gave {got}, expected {want} for a random network.")
    return f"{want} trainable of {total}"


def _model_probe(ns: dict, seed: int) -> Arrays:
    k = _num_classes(seed)
    model = ns["build_classifier"](k)
    names = [name for name, _ in model.named_parameters()]
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 3, IMAGE, IMAGE))
                         .astype(np.float32))
    model.eval()
    with torch.no_grad():
        logits = model(x)
    first = next(model.parameters())
    return {"names": np.array(names), "trainable": np.array([p.requires_grad for _, p in
                                                            model.named_parameters()]),
            "logits_shape": np.array(logits.shape), "first": first.detach().numpy().ravel()[:64]}


def _split(arrays: Arrays) -> tuple[np.ndarray, np.ndarray]:
    head = np.array([str(n).startswith("head.") for n in arrays["names"]])
    if not head.any():
        raise CheckFailed("the model has no `head`: use a tlkit Backbone and replace its head "
                          "(`tlkit.replace_head(model, num_classes)` or `model.reset_head(...)`).")
    return head, arrays["trainable"].astype(bool)


def _frozen_verify(arrays: Arrays, seed: int) -> str:
    from ..models.factory import get_backbone

    head, trainable = _split(arrays)
    reference = next(get_backbone("efficientnet_lite0").parameters()).detach().numpy().ravel()[:64]
    if arrays["first"].shape != reference.shape or not np.allclose(arrays["first"], reference):
        raise CheckFailed("the backbone's weights are not Lite0's ImageNet weights: build it with "
                          "`tlkit.get_backbone('efficientnet_lite0')` (weights='imagenet').")
    loose = [str(n) for n, h, t in zip(arrays["names"], head, trainable) if t and not h]
    if loose:
        raise CheckFailed(f"{len(loose)} backbone parameters still train (e.g. {loose[0]}): "
                          "freeze the backbone (`tlkit.freeze(model)` or requires_grad_(False)).")
    return f"all {int((~head).sum())} backbone tensors frozen, ImageNet weights kept"


def _head_verify(arrays: Arrays, seed: int) -> str:
    head, trainable = _split(arrays)
    k = _num_classes(seed)
    if not trainable[head].all():
        raise CheckFailed("the new head is frozen too: freeze the backbone first, then replace "
                          "the head (a new layer has requires_grad=True), or unfreeze the head.")
    if tuple(arrays["logits_shape"]) != (2, k):
        raise CheckFailed(f"build_classifier({k}) gives outputs of shape "
                          f"{tuple(arrays['logits_shape'])} for 2 images; expected (2, {k}).")
    return f"a trainable head with {k} outputs"


register(Check("ex02.count_trainable", ("count_trainable",), _count_probe, _count_verify))
register(Check("ex02.frozen", ("build_classifier",), _model_probe, _frozen_verify))
register(Check("ex02.head", ("build_classifier",), _model_probe, _head_verify))
