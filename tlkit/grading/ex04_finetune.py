"""Checks for ex04_fine_tuning: unfreeze the last blocks, discriminative rates, BatchNorm, loss.

The student writes ``prepare(model, *, n, lr_backbone, lr_head)`` — train only the last ``n``
blocks (with the neck) and the head, and return an optimizer with one parameter group per rate —
and ``train_steps(model, optimizer, images, labels, *, steps)``, which trains with batch-norm
layers of frozen blocks left in eval mode and returns the losses.
"""
from __future__ import annotations

import numpy as np
import torch

from . import Arrays, Check, CheckFailed, register

SIZE = 64


def _setting(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"n": int(rng.integers(1, 4)), "lr_backbone": float(rng.choice([1e-4, 3e-4, 1e-3])),
            "lr_head": float(rng.choice([1e-2, 3e-2]))}


def _model(seed: int, num_classes: int = 2):
    from ..models.factory import get_backbone
    from ..models.surgery import replace_head

    model = get_backbone("efficientnet_lite0")
    # The same new head for a seed, without reseeding the student's notebook.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        replace_head(model, num_classes)
    return model


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..models.factory import backbone_weights
    from ..data.catalog import load_dataset

    data = load_dataset("faces", split="train", k_per_class=4, seed=seed % 1000,
                        transform=backbone_weights("efficientnet_lite0").transforms(size=SIZE))
    images, labels = zip(*(data[i] for i in range(len(data))))
    return torch.stack(images), torch.tensor(labels)


def _prepare_probe(ns: dict, seed: int) -> Arrays:
    s = _setting(seed)
    model = _model(seed)
    optimizer = ns["prepare"](model, n=s["n"], lr_backbone=s["lr_backbone"], lr_head=s["lr_head"])
    names = {id(p): name for name, p in model.named_parameters()}
    group_of = {name: -1 for name in names.values()}
    for g, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            group_of[names.get(id(p), "?")] = g
    return {"names": np.array(list(group_of)), "group_of": np.array(list(group_of.values())),
            "trainable": np.array([p.requires_grad for p in model.parameters()]),
            "group_lr": np.array([group["lr"] for group in optimizer.param_groups], dtype=float)}


def _expected_trainable(seed: int) -> np.ndarray:
    from ..models.surgery import unfreeze_last

    model = unfreeze_last(_model(seed), _setting(seed)["n"])
    return np.array([p.requires_grad for p in model.parameters()])


def _unfreeze_verify(arrays: Arrays, seed: int) -> str:
    want, got = _expected_trainable(seed), arrays["trainable"].astype(bool)
    n = _setting(seed)["n"]
    if got.shape != want.shape or (got != want).any():
        extra = int((got & ~want).sum())
        lacking = int((want & ~got).sum())
        raise CheckFailed(f"with n={n}: {extra} tensors train that should be frozen and {lacking} "
                          f"are frozen that should train. Train exactly the last {n} block(s) "
                          "(`model.blocks[-n:]`, the last one includes the neck) and the head.")
    return f"n={n}: exactly the last {n} block(s) and the head train"


def _groups_verify(arrays: Arrays, seed: int) -> str:
    s = _setting(seed)
    names, group_of, lr = arrays["names"], arrays["group_of"], arrays["group_lr"]
    trainable = _expected_trainable(seed)
    if len(names) != len(trainable):
        raise CheckFailed("prepare changed the model's parameters; only set requires_grad.")
    for name, g, train in zip(names, group_of, trainable):
        if g < 0 and train:
            raise CheckFailed(f"{name} should train but is in no parameter group.")
        if g >= 0 and not train:
            raise CheckFailed(f"{name} is frozen but was given to the optimizer: pass only "
                              "trainable parameters.")
        if g >= 0:
            want = s["lr_head"] if str(name).startswith("head.") else s["lr_backbone"]
            if not np.isclose(lr[g], want):
                part = "the head" if str(name).startswith("head.") else "the backbone"
                raise CheckFailed(f"{name} ({part}) has learning rate {lr[g]:g}, expected {want:g}: "
                                  "the head gets lr_head, the unfrozen blocks lr_backbone.")
    return f"{len(lr)} groups: backbone at {s['lr_backbone']:g}, head at {s['lr_head']:g}"


def _train_probe(ns: dict, seed: int) -> Arrays:
    s = _setting(seed)
    model = _model(seed)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    optimizer = ns["prepare"](model, n=1, lr_backbone=s["lr_backbone"], lr_head=s["lr_head"])
    images, labels = _batch(seed)
    ns["train_steps"](model, optimizer, images, labels, steps=5)
    out = {f"after/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out.update({f"head_before/{k}": v.numpy() for k, v in head_before.items()})
    return out


def _eval_loss(model, images, labels) -> float:
    model.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(images), labels))


def _batchnorm_verify(arrays: Arrays, seed: int) -> str:
    model = _model(seed)
    reference, last = model.state_dict(), f"blocks.{len(model.blocks) - 1}."  # probed with n=1
    frozen = [k for k in reference if "running_" in k and not k.startswith(last)]
    moved = [k for k in frozen if not np.array_equal(arrays[f"after/{k}"], reference[k].numpy())]
    if moved:
        raise CheckFailed(f"{len(moved)} batch-norm statistics of frozen blocks changed (e.g. "
                          f"{moved[0]}): keep batch-norm layers of frozen blocks in eval mode.")
    return f"{len(frozen)} running statistics of frozen blocks unchanged"


def _loss_verify(arrays: Arrays, seed: int) -> str:
    images, labels = _batch(seed)
    model = _model(seed)
    head_after = arrays["after/head.weight"]
    if np.array_equal(head_after, arrays["head_before/weight"]):
        raise CheckFailed("the head's weights did not change: does each step call "
                          "optimizer.step() after loss.backward()?")
    model.head.load_state_dict({k[len("head_before/"):]: torch.from_numpy(v)
                                for k, v in arrays.items() if k.startswith("head_before/")})
    before = _eval_loss(model, images, labels)
    model.load_state_dict({k[len("after/"):]: torch.from_numpy(v)
                           for k, v in arrays.items() if k.startswith("after/")})
    after = _eval_loss(model, images, labels)
    if not after < 0.9 * before:
        raise CheckFailed(f"after 5 steps the loss went from {before:.3f} to {after:.3f}: "
                          "each step needs zero_grad, forward, loss, backward, optimizer.step().")
    return f"loss {before:.3f} → {after:.3f} after 5 steps (measured by the grader)"


register(Check("ex04.unfreeze", ("prepare",), _prepare_probe, _unfreeze_verify))
register(Check("ex04.groups", ("prepare",), _prepare_probe, _groups_verify))
register(Check("ex04.batchnorm", ("prepare", "train_steps"), _train_probe, _batchnorm_verify))
register(Check("ex04.loss_falls", ("prepare", "train_steps"), _train_probe, _loss_verify))
