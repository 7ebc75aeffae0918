"""ex04_fine_tuning: unfreeze the last blocks, two learning rates, batch norm kept, the loss falls.

The grader sends the new head's starting weights and the training batch; the model the student's
functions receive is built from them inside the sandbox. "Before" is measured here, from the
same starting weights — never taken from the student's side.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
from tlkit.teach import exercises as ex

from .checks import Arrays, Check, CheckFailed, Context, register

STEPS = 5


@lru_cache(maxsize=4)
def _built(seed: int):
    return ex.finetune_model(seed)


def _reference(seed: int):
    """A fresh copy of the model a seed starts from (built once per seed in this process)."""
    return copy.deepcopy(_built(seed))


@lru_cache(maxsize=4)
def _batch(seed: int):
    return ex.finetune_batch(seed)


def _prepare_inputs(ctx: Context) -> Arrays:
    s = ex.finetune_setting(ctx.seed)
    head = _reference(ctx.seed).head.state_dict()
    arrays = {f"head/{k}": v.numpy() for k, v in head.items()}
    arrays.update({k: np.array(v) for k, v in s.items()})
    return arrays


def _train_inputs(ctx: Context) -> Arrays:
    arrays = _prepare_inputs(ctx)
    arrays["n"] = np.array(1)
    images, labels = _batch(ctx.seed)
    arrays.update(images=images.numpy(), labels=labels.numpy(), steps=np.array(STEPS))
    return arrays


def _expected_trainable(ctx: Context, n: int) -> np.ndarray:
    from tlkit.models.surgery import set_batchnorm, unfreeze_last

    # The exercise sets requires_grad block by block, γ and β included: compare with tlkit's
    # "frozen" policy, not the pretrained default ("inference" keeps γ and β frozen).
    model = unfreeze_last(set_batchnorm(_reference(ctx.seed), "frozen"), n)
    return np.array([p.requires_grad for p in model.parameters()])


def _unfreeze_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    n = int(inputs["n"])
    want, got = _expected_trainable(ctx, n), outputs["trainable"].astype(bool)
    if got.shape != want.shape or (got != want).any():
        extra = int((got & ~want).sum()) if got.shape == want.shape else "some"
        lacking = int((want & ~got).sum()) if got.shape == want.shape else "some"
        raise CheckFailed(f"with n={n}: {extra} tensors train that should be frozen and {lacking} "
                          f"are frozen that should train. Train exactly the last {n} block(s) "
                          "(`model.blocks[-n:]`, the last one includes the neck) and the head.")
    return f"n={n}: exactly the last {n} block(s) and the head train"


def _groups_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    names, group_of, lr = outputs["names"], outputs["group_of"], outputs["group_lr"]
    trainable = _expected_trainable(ctx, int(inputs["n"]))
    if len(names) != len(trainable):
        raise CheckFailed("prepare changed the model's parameters; only set requires_grad.")
    for name, g, train in zip(names.tolist(), group_of.tolist(), trainable):
        if g < 0 and train:
            raise CheckFailed(f"{name} should train but is in no parameter group.")
        if g >= 0 and not train:
            raise CheckFailed(f"{name} is frozen but was given to the optimizer: pass only "
                              "trainable parameters.")
        if g >= 0:
            head = name.startswith("head.")
            want = float(inputs["lr_head"] if head else inputs["lr_backbone"])
            if not np.isclose(lr[g], want):
                raise CheckFailed(f"{name} ({'the head' if head else 'the backbone'}) has learning "
                                  f"rate {lr[g]:g}, expected {want:g}: the head gets lr_head, the "
                                  "unfrozen blocks lr_backbone.")
    return (f"{len(lr)} groups: backbone at {float(inputs['lr_backbone']):g}, "
            f"head at {float(inputs['lr_head']):g}")


def _after(outputs: Arrays) -> dict:
    import torch

    return {k[len("after/"):]: torch.from_numpy(np.asarray(v)) for k, v in outputs.items()
            if k.startswith("after/")}


def _batchnorm_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    reference = _reference(ctx.seed)
    state, after = reference.state_dict(), _after(outputs)
    last = f"blocks.{len(reference.blocks) - 1}."  # trained with n=1
    frozen = [k for k in state if "running_" in k and not k.startswith(last)]
    if any(k not in after for k in frozen):
        raise CheckFailed("the trained model lost some of its batch-norm statistics.")
    # Statistics that did not move because nothing trained prove nothing: the training must
    # have lowered the loss (the grader's own measurement) before this can be earned.
    _loss_verify(inputs, outputs, ctx)
    moved = [k for k in frozen if not np.array_equal(after[k].numpy(), state[k].numpy())]
    if moved:
        raise CheckFailed(f"{len(moved)} batch-norm statistics of frozen blocks changed (e.g. "
                          f"{moved[0]}): keep batch-norm layers of frozen blocks in eval mode.")
    return f"{len(frozen)} running statistics of frozen blocks unchanged"


def _eval_loss(model, images, labels) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(images), labels))


def _loss_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    import torch

    images, labels = torch.from_numpy(inputs["images"]), torch.from_numpy(inputs["labels"])
    model = _reference(ctx.seed)
    after = _after(outputs)
    if "head.weight" not in after or torch.equal(after["head.weight"], model.head.weight.detach()):
        # Batch-norm statistics alone can move the loss: the head must have learnt.
        raise CheckFailed("the head's weights did not change: does each step call "
                          "optimizer.step() after loss.backward()?")
    before = _eval_loss(model, images, labels)
    try:
        model.load_state_dict(after)
    except (RuntimeError, KeyError) as error:
        raise CheckFailed(f"the trained model no longer fits Lite0 with a 2-way head ({error}).")
    after = _eval_loss(model, images, labels)
    if not after < 0.9 * before:
        raise CheckFailed(f"after {STEPS} steps the loss went from {before:.3f} to {after:.3f}: "
                          "each step needs zero_grad, forward, loss, backward, optimizer.step().")
    return f"loss {before:.3f} → {after:.3f} after {STEPS} steps (measured by the grader)"


register(Check("ex04.unfreeze", ("prepare",), "prepare", _prepare_inputs, _unfreeze_verify))
register(Check("ex04.groups", ("prepare",), "prepare", _prepare_inputs, _groups_verify))
register(Check("ex04.batchnorm", ("prepare", "train_steps"), "train", _train_inputs,
               _batchnorm_verify))
register(Check("ex04.loss_falls", ("prepare", "train_steps"), "train", _train_inputs,
               _loss_verify))
