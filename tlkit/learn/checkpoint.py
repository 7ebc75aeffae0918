"""Checkpoints that know what they belong to, written so that a crash never leaves a bad one.

A checkpoint stores, besides the weights and the optimizer, *which* model and optimizer it was
made for: ``resume=True`` with another network (or the same network with other layers frozen)
then fails with the file's name and two ways out, instead of a wall of missing keys — or
worse, an optimizer state silently applied to the wrong parameters.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from ..core.checks import first_line

__all__ = ["model_signature", "optimizer_signature", "save_atomically", "load_checkpoint",
           "save_run", "snapshot", "CheckpointMismatch"]


class CheckpointMismatch(ValueError):
    """``resume=True`` found a checkpoint of another model or optimizer."""


def model_signature(model: nn.Module) -> str:
    """A short hash of the architecture: every tensor's name, shape and dtype (not values)."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    return h.hexdigest()[:16]


def optimizer_signature(optimizer: torch.optim.Optimizer) -> str:
    """The optimizer's kind and the shapes of the parameters in each of its groups."""
    parts = [type(optimizer).__name__]
    for group in optimizer.param_groups:
        parts.append(",".join(str(tuple(p.shape)) for p in group["params"]))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def save_atomically(path: Path, state: dict) -> None:
    """Write then rename: a run killed while saving keeps the previous good checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_run(path: Path, *, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler, scaler, history) -> None:
    """The state after ``epoch``, with what it belongs to, so resume=True can refuse a mismatch."""
    save_atomically(path, {
        "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler else None,
        "scaler": scaler.state_dict() if scaler else None,
        "history": history.records, "marks": history.marks,
        "model_name": getattr(model, "name", type(model).__name__),
        "model_signature": model_signature(model),
        "optimizer_kind": type(optimizer).__name__,
        "optimizer_signature": optimizer_signature(optimizer)})


def snapshot(state):
    """A copy of a state dict whose tensors live on the CPU: later steps cannot change it."""
    if torch.is_tensor(state):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: snapshot(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v) for v in state)
    return state


def load_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> dict:
    """The checkpoint at ``path``, after checking it belongs to this model and optimizer."""
    ways_out = (f"Pass a new checkpoint_dir= for this run, or resume=False to start over "
                f"(which replaces {path.name} after the first epoch).")
    try:
        # weights_only: a checkpoint is data; never run code from a file on disk.
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 — truncated, not a torch file, foreign objects
        raise CheckpointMismatch(f"The checkpoint {path} cannot be read ({type(err).__name__}): "
                                 f"it is damaged or not a tlkit checkpoint. {ways_out}") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch"} <= set(state):
        raise CheckpointMismatch(f"{path} is not a tlkit checkpoint (it lacks the model, "
                                 f"optimizer or epoch). {ways_out}")
    name = getattr(model, "name", type(model).__name__)
    saved_for = state.get("model_name", "another model")
    if state.get("model_signature", model_signature(model)) != model_signature(model):
        raise CheckpointMismatch(f"The checkpoint {path} was saved for {saved_for}, a different "
                                 f"network from this {name}. {ways_out}")
    if state.get("optimizer_signature", optimizer_signature(optimizer)) != \
            optimizer_signature(optimizer):
        raise CheckpointMismatch(
            f"The checkpoint {path} was saved with another optimizer "
            f"({state.get('optimizer_kind', '?')}, or other parameters trainable) than this run's "
            f"{type(optimizer).__name__}. Resume with the same optimizer and the same frozen "
            f"blocks, or: {ways_out}")
    current = model.state_dict()
    saved = state["model"]
    if not isinstance(saved, dict) or saved.keys() != current.keys() or any(
            tuple(saved[k].shape) != tuple(v.shape) for k, v in current.items()):
        raise CheckpointMismatch(f"The checkpoint {path} holds the weights of another network "
                                 f"than this {name}. {ways_out}")
    try:
        # The optimizer first: it checks its groups before changing anything, so a mismatch
        # leaves the model's weights as they were.
        optimizer.load_state_dict(state["optimizer"])
        model.load_state_dict(saved)
    except (RuntimeError, ValueError, KeyError) as err:  # an old checkpoint without signatures
        raise CheckpointMismatch(f"The checkpoint {path} does not fit this {name} or its "
                                 f"optimizer ({first_line(err, 160)}). {ways_out}") from None
    return state
