"""ex02_freeze_and_head: count what trains; Lite0 frozen with a new head. The probe reports every
parameter's name, requires_grad and a fingerprint, read through ``nn.Module`` itself (not the
student's model's own methods); the fingerprints are compared here with Lite0's ImageNet weights."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from tlkit.teach import exercises as ex

from .checks import Arrays, Check, CheckFailed, Context, register

IMAGE = 64  # the check is about structure, not accuracy


def _count_inputs(ctx: Context) -> Arrays:
    return {"seed": np.array(ctx.seed)}  # the probe builds ex.small_mlp(seed): public structure


def _count_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    model = ex.small_mlp(ctx.seed)
    want = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    got = int(outputs["count"])
    if got == total and want != total:
        raise CheckFailed(f"count_trainable counted all {total} parameters; only those with "
                          f"requires_grad=True ({want}) train.")
    if got != want:
        raise CheckFailed(f"count_trainable gave {got}, expected {want} for a random network.")
    return f"{want} trainable of {total}"


def _model_inputs(ctx: Context) -> Arrays:
    rng = np.random.default_rng(ctx.seed)
    return {"num_classes": np.array(ex.num_classes(ctx.seed)),
            "images": rng.normal(size=(2, 3, IMAGE, IMAGE)).astype(np.float32)}


@lru_cache(maxsize=1)
def _fingerprints():
    import torch
    from tlkit.models.factory import get_backbone

    model = get_backbone("efficientnet_lite0")
    with torch.no_grad():
        return {name: _fingerprint(p.numpy()) for name, p in model.named_parameters()
                if not name.startswith("head.")}


def _fingerprint(values: np.ndarray) -> np.ndarray:
    flat = values.astype(np.float64).ravel()
    return np.array([flat.size, flat.sum(), (flat ** 2).sum(), flat[: 97].sum()])


def _split(outputs: Arrays) -> tuple[np.ndarray, np.ndarray]:
    head = np.array([str(n).startswith("head.") for n in outputs["names"]])
    if not head.any():
        raise CheckFailed("the model has no `head`: use a tlkit Backbone and replace its head "
                          "(`tlkit.replace_head(model, num_classes)` or `model.reset_head(...)`).")
    return head, outputs["trainable"].astype(bool)


def _frozen_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    head, trainable = _split(outputs)
    reference = _fingerprints()
    names = [str(n) for n in outputs["names"]]
    body = [n for n in names if not n.startswith("head.")]
    if set(body) != set(reference) or not all(
            np.allclose(outputs[f"print/{n}"], reference[n], rtol=1e-5, atol=1e-4) for n in body):
        raise CheckFailed("the backbone's weights are not Lite0's ImageNet weights: build it with "
                          "`tlkit.get_backbone('efficientnet_lite0')` (weights='imagenet').")
    loose = [n for n, h, t in zip(names, head, trainable) if t and not h]
    if loose:
        raise CheckFailed(f"{len(loose)} backbone parameters still train (e.g. {loose[0]}): "
                          "freeze the backbone (requires_grad_(False) on each of its parameters).")
    return f"all {int((~head).sum())} backbone tensors frozen, ImageNet weights kept"


def _head_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    head, trainable = _split(outputs)
    k = int(inputs["num_classes"])
    body = {str(n) for n, h in zip(outputs["names"], head) if not h}
    if body != set(_fingerprints()):
        raise CheckFailed("the head must sit on Lite0: build the model with "
                          "`tlkit.get_backbone('efficientnet_lite0')` and replace its head.")
    if not trainable[head].all():
        raise CheckFailed("the new head is frozen too: freeze the backbone first, then replace "
                          "the head (a new layer has requires_grad=True), or unfreeze the head.")
    if tuple(outputs["logits_shape"]) != (2, k):
        raise CheckFailed(f"build_classifier({k}) gives outputs of shape "
                          f"{tuple(outputs['logits_shape'])} for 2 images; expected (2, {k}).")
    return f"a trainable head with {k} outputs"


register(Check("ex02.count_trainable", ("count_trainable",), "count", _count_inputs,
               _count_verify))
register(Check("ex02.frozen", ("build_classifier",), "classifier", _model_inputs, _frozen_verify))
register(Check("ex02.head", ("build_classifier",), "classifier", _model_inputs, _head_verify))
