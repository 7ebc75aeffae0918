"""The training loop: one function, read top to bottom (lessons 04 and 05).

``fit`` is the loop from lesson 03 — forward, loss, backward, ``w ← w − α·∇L`` — plus what a
real run needs: a progress bar, a history of every epoch, a checkpoint after each epoch that
``resume=True`` continues from, and mixed precision on a GPU.

Example::

    history = tlkit.fit(model, train, val_data=test, epochs=5, lr=1e-3, checkpoint_dir="runs/a")
    history["val_acc"]          # one number per epoch
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .backbones import Backbone
from .course import seed_everything
from .device import autocast_dtype, default_device

__all__ = ["fit", "evaluate", "History", "CPUTrainingWarning", "Data"]

# What fit/evaluate accept: a Dataset of (tensor, label), or cached features as (x, y).
Data = torch.utils.data.Dataset | tuple[torch.Tensor, torch.Tensor]

# Warn about CPU training when one epoch looks longer than this (seconds).
CPU_WARNING_SECONDS = 20.0


class CPUTrainingWarning(UserWarning):
    """Training runs on the CPU and will take a while."""


@dataclass
class History:
    """One record per epoch; ``history["val_acc"]`` gives a column, ``marks`` named epochs."""

    records: list[dict] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __add__(self, other: "History") -> "History":
        shift = len(self.records)
        records = self.records + [{**r, "epoch": r["epoch"] + shift} for r in other.records]
        marks = {**self.marks, **{k: v + shift for k, v in other.marks.items()}}
        return History(records, marks)

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items()
                          if isinstance(v, float) and k != "seconds")
        return f"History({len(self)} epochs; last: {shown})"


def _as_dataset(data: Data) -> torch.utils.data.Dataset:
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        return torch.utils.data.TensorDataset(data[0], data[1])  # cached features (x, y)
    if isinstance(data, torch.utils.data.Dataset):
        if getattr(data, "transform", True) is None and hasattr(data, "load_image"):
            raise ValueError(f"{data!r} has no transform, so its items are PIL images, not "
                             f"tensors: load it with transform=model.weights.transforms()")
        return data
    raise TypeError(f"data must be a Dataset or a tuple (x, y) of tensors, got {type(data)}")


def _make_optimizer(model: nn.Module, optimizer: str | Callable, lr: float | slice,
                    momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    from .surgery import group_learning_rates, param_groups

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
    if optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=momentum)
    if optimizer in ("adam", "adamw"):
        return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer](groups)
    raise ValueError(f"optimizer must be 'sgd', 'adam', 'adamw' or a callable, got {optimizer!r}")


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, *, batch_size: int = 64,
             device: torch.device | str | None = None) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data``."""
    device = torch.device(device) if device is not None else default_device()
    loader = torch.utils.data.DataLoader(_as_dataset(data), batch_size=batch_size)
    was_training = model.training
    model.eval().to(device)
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x).float()
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    model.train(was_training)
    return {"loss": total_loss / count, "acc": correct / count}


def fit(model: nn.Module, train_data: Data, *, val_data: Data | None = None, epochs: int = 1,
        lr: float | slice = 1e-3, optimizer: str | Callable = "sgd", momentum: float = 0.9,
        weight_decay: float = 0.0, batch_size: int = 32, seed: int = 0,
        device: torch.device | str | None = None, checkpoint_dir: str | Path | None = None,
        resume: bool = False, mixed_precision: bool = True, num_workers: int = 0,
        scheduler: str | None = None, progress: bool = True,
        on_batch: Callable[[int, int, float], None] | None = None) -> History:
    """Train ``model`` on ``train_data`` (a Dataset, or cached features as a tuple ``(x, y)``).

    ``lr`` may be ``slice(lo, hi)`` for discriminative rates over a Backbone's groups. Frozen
    parameters are not given to the optimizer. With ``checkpoint_dir`` the state is saved after
    every epoch; ``resume=True`` continues from it and, on the CPU, ends with exactly the
    weights an uninterrupted run would have (every epoch is seeded from ``seed`` and its index).
    ``scheduler="cosine"`` anneals the rates to zero over the epochs.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir= (where the checkpoints are)")
    device = torch.device(device) if device is not None else default_device()
    on_gpu = device.type == "cuda"
    dataset = _as_dataset(train_data)

    seed_everything(seed)
    model.to(device)
    amp_dtype = autocast_dtype(device) if mixed_precision else None
    if on_gpu:
        # channels_last lets cuDNN use tensor-core convolution kernels without transposes.
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, optimizer, lr, momentum, weight_decay)
    sched = None
    if scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    elif scheduler is not None:
        raise ValueError(f"scheduler must be None or 'cosine', got {scheduler!r}")
    # float16 can underflow small gradients to zero, so it needs loss scaling; bfloat16 doesn't.
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    history, start_epoch = History(), 0
    ckpt = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = History(state["history"], state.get("marks", {}))
        start_epoch = state["epoch"] + 1
        if progress:
            tqdm.write(f"resuming from {ckpt} after epoch {start_epoch} of {epochs}")
    elif ckpt is not None and ckpt.is_file():
        warnings.warn(f"{ckpt} holds an earlier run and will be overwritten after this epoch; "
                      f"pass resume=True to continue that run instead", stacklevel=2)
    elif resume and progress:
        tqdm.write(f"no checkpoint in {checkpoint_dir} yet: starting from epoch 1")

    for epoch in range(start_epoch, epochs):
        # Seed each epoch from (seed, epoch): shuffling, dropout and augmentation are then the
        # same whether or not the run was interrupted and resumed before this epoch.
        seed_everything(seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=generator,
            num_workers=num_workers, pin_memory=on_gpu, drop_last=len(dataset) > batch_size
            and len(dataset) % batch_size == 1)  # a lone sample breaks batch norm
        model.train()
        started = time.perf_counter()
        total_loss, correct, count = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for step, (x, y) in enumerate(bar):
            # non_blocking + pinned memory: the copy to the GPU overlaps with compute.
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if on_gpu and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x)
                loss = nn.functional.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()  # w ← w − α·∇L for every parameter the optimizer holds
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, "
                                         f"step {step}: the learning rate is probably too high")
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
            bar.set_postfix(loss=f"{total_loss / count:.3f}")
            if step == 1 and not on_gpu and epoch == start_epoch:
                _warn_if_slow(time.perf_counter() - started, len(loader), epochs - epoch)
            if on_batch is not None:
                on_batch(epoch, step, loss.item())
        if sched is not None:
            sched.step()

        record = {"epoch": epoch + 1, "train_loss": total_loss / count,
                  "train_acc": correct / count, "lr": opt.param_groups[-1]["lr"]}
        if val_data is not None:
            metrics = evaluate(model, val_data, batch_size=batch_size, device=device)
            record.update(val_loss=metrics["loss"], val_acc=metrics["acc"])
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in record.items()))
        if ckpt is not None:
            _save_atomically(ckpt, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched else None,
                "scaler": scaler.state_dict() if scaler else None,
                "history": history.records, "marks": history.marks})
    return history


def _warn_if_slow(two_steps: float, steps: int, epochs_left: int) -> None:
    per_epoch = two_steps / 2 * steps
    if per_epoch > CPU_WARNING_SECONDS:
        warnings.warn(
            f"Training on the CPU: about {per_epoch:.0f} s per epoch ({steps} batches), "
            f"{per_epoch * epochs_left / 60:.1f} min for the {epochs_left} epoch(s) left. A GPU "
            f"is much faster (on Colab: Runtime → Change runtime type → GPU); or use cached "
            f"features (tlkit.extract_features) or smaller images.",
            CPUTrainingWarning, stacklevel=3)


def _save_atomically(path: Path, state: dict) -> None:
    # Write then rename: a run killed while saving keeps the previous good checkpoint.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
