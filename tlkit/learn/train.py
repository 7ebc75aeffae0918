"""The training loop: one function, read top to bottom (lessons 04 and 05).

``fit`` is the loop from lesson 03 — forward, loss, backward, ``w ← w − α·∇L`` — plus what a
real run needs: a progress bar, a history of every epoch, a checkpoint after each epoch that
``resume=True`` continues from, mixed precision on a GPU, and a run that blows up (a loss of
NaN, or a billion) stopping before the bad step, with its last good weights put back.

Example::

    history = tlkit.fit(model, train, val_data=test, epochs=5, lr=1e-3, checkpoint_dir="runs/a")
    history["val_acc"]          # one number per epoch
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.checks import choice, describe, first_line, flag, integer, number, writable_folder
from ..core.device import as_device, autocast_dtype
from ..core.seed import seed_everything
from ..models.backbone import Backbone
from ..models.surgery import group_learning_rates, param_groups
from .checkpoint import load_checkpoint, model_signature, optimizer_signature, save_atomically
from . import guards
from .guards import CPUTrainingWarning, TrainingDiverged, diverged_message, loss_bound
from .history import History
from .inputs import (Data, as_dataset, batches, check_batch_labels, check_labels, check_model,
                     embeds_tokens, explain_forward_error, output_width)

__all__ = ["fit", "evaluate", "History", "CPUTrainingWarning", "TrainingDiverged", "Data"]


def _make_optimizer(model: nn.Module, optimizer: str | Callable, lr: float | slice,
                    momentum: float, weight_decay: float) -> torch.optim.Optimizer:
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


def _forward(model: nn.Module, x: torch.Tensor, first: bool) -> torch.Tensor:
    if not first:
        return model(x)
    try:  # the first batch explains a shape mix-up; later ones need no try
        out = model(x)
    except (RuntimeError, ValueError) as err:
        why = explain_forward_error(model, x, err)
        if why is None:
            raise
        raise ValueError(f"{why}. ({first_line(err, 160)})") from None
    if not torch.is_tensor(out) or out.dim() != 2:
        got = (f"a tensor of shape {tuple(out.shape)}" if torch.is_tensor(out) else
               f"a {type(out).__name__} of {len(out)} outputs" if isinstance(out, (tuple, list))
               else describe(out))
        raise TypeError(f"the model returns {got}; fit and evaluate train and score a model that "
                        f"returns one tensor of class scores, shape (batch, classes)")
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, *, batch_size: int = 64,
             device: torch.device | str | None = None) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data``.

    Example: ``tlkit.evaluate(model, test)["acc"]``
    """
    check_model(model)
    batch_size = integer("batch_size", batch_size, min=1)
    device = as_device(device)
    dataset = as_dataset(data, name="data", token_ids=embeds_tokens(model))
    check_labels(model, dataset, name="data")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    was_training = model.training
    model.eval().to(device)
    total_loss, correct, count = 0.0, 0, 0
    for i, (x, y) in enumerate(batches(loader, name="data")):
        logits = _forward(model, x.to(device), first=i == 0).float()
        check_batch_labels(y, logits.shape[1], name="data")
        y = y.to(device)
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
    ``scheduler="cosine"`` anneals the rates to zero over the epochs. A loss that becomes NaN,
    infinite or absurdly large raises :class:`TrainingDiverged` before the step that would
    spread it, with the weights of the start of that epoch restored.
    """
    # Every argument is checked before any work: a typo must not cost an epoch.
    check_model(model)
    epochs = integer("epochs", epochs, min=1)
    batch_size = integer("batch_size", batch_size, min=1)
    seed = integer("seed", seed, min=0, max=2**32 - 1)
    num_workers = integer("num_workers", num_workers, min=0)
    momentum = number("momentum", momentum, min=0, max=0.999)
    weight_decay = number("weight_decay", weight_decay, min=0)
    choice("scheduler", scheduler, (None, "cosine"))
    resume, progress = flag("resume", resume), flag("progress", progress)
    mixed_precision = flag("mixed_precision", mixed_precision)
    group_learning_rates(lr, 1)  # a bad lr fails here, not after the model moved
    if on_batch is not None and not callable(on_batch):
        raise TypeError("on_batch must be a function (epoch, step, loss) or None")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir= (the folder of an earlier run)")
    dataset = as_dataset(train_data, name="train_data", token_ids=embeds_tokens(model))
    check_labels(model, dataset, name="train_data")
    if val_data is not None:
        val_data = as_dataset(val_data, name="val_data", token_ids=embeds_tokens(model))
        check_labels(model, val_data, name="val_data")
        guards.check_classes_match(dataset, val_data)
    guards.warn_about_setup(model, dataset)
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = writable_folder(checkpoint_dir, what="checkpoint_dir",
                               fix="Pass a folder you can write to, e.g. checkpoint_dir='runs/a'.")
        ckpt = ckpt / "last.pt"
    device = as_device(device)
    on_gpu = device.type == "cuda"

    seed_everything(seed)
    model.to(device)
    amp_dtype = autocast_dtype(device) if mixed_precision else None
    if on_gpu:
        # channels_last lets cuDNN use tensor-core convolution kernels without transposes.
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, optimizer, lr, momentum, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs) if scheduler else None
    # float16 can underflow small gradients to zero, so it needs loss scaling; bfloat16 doesn't.
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    history, start_epoch = History(), 0
    if resume and ckpt.is_file():
        state = load_checkpoint(ckpt, model=model, optimizer=opt, device=device)
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = History(state["history"], state.get("marks", {}))
        start_epoch = state["epoch"] + 1
        if start_epoch >= epochs:
            warnings.warn(f"{ckpt} already holds {start_epoch} finished epoch(s), so there is "
                          f"nothing left to train for epochs={epochs}: pass "
                          f"epochs={start_epoch + 1} or more to go on", stacklevel=2)
        elif progress:
            tqdm.write(f"resuming from {ckpt} after epoch {start_epoch} of {epochs}; the "
                       f"checkpoint's learning rates and optimizer state go on")
    elif ckpt is not None and ckpt.is_file():
        warnings.warn(f"{ckpt} holds an earlier run and will be overwritten after this epoch; "
                      f"pass resume=True to continue that run instead", stacklevel=2)
    elif resume and progress:
        tqdm.write(f"no checkpoint in {checkpoint_dir} yet: starting from epoch 1")

    width = output_width(model)
    first_loss = None
    for epoch in range(start_epoch, epochs):
        # Seed each epoch from (seed, epoch): shuffling, dropout and augmentation are then the
        # same whether or not the run was interrupted and resumed before this epoch.
        seed_everything(seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=generator,
            num_workers=num_workers, pin_memory=on_gpu, drop_last=len(dataset) > batch_size
            and len(dataset) % batch_size == 1)  # a lone sample breaks batch norm
        # The weights as this epoch starts: put back if the loss blows up during it.
        good = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.train()
        started = time.perf_counter()
        total_loss, correct, count = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for step, (x, y) in enumerate(batches(bar, name="train_data")):
            check_batch_labels(y, width or 2**62, name="train_data")
            # non_blocking + pinned memory: the copy to the GPU overlaps with compute.
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if on_gpu and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                try:
                    logits = _forward(model, x, first=step == 0 and epoch == start_epoch)
                except Exception:
                    model.load_state_dict(good)  # batch-norm statistics may have moved
                    raise
                if width is None:
                    width = logits.shape[1]
                    check_batch_labels(y.cpu(), width, name="train_data")
                loss = nn.functional.cross_entropy(logits.float(), y)
            value = loss.item()
            first_loss = value if first_loss is None else first_loss
            # Checked before the step: a NaN gradient applied once ruins every weight.
            if not math.isfinite(value) or value > loss_bound(first_loss):
                model.load_state_dict(good)
                raise TrainingDiverged(diverged_message(value, first_loss, epoch, step, opt, x),
                                       history)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()  # w ← w − α·∇L for every parameter the optimizer holds
            total_loss += value * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
            bar.set_postfix(loss=f"{total_loss / count:.3f}")
            if step == 1 and not on_gpu and epoch == start_epoch:
                guards.warn_if_slow(time.perf_counter() - started, len(loader), epochs - epoch)
            if on_batch is not None:
                on_batch(epoch, step, value)
        # The rate this epoch used, before the scheduler sets the next one.
        record = {"epoch": epoch + 1, "train_loss": total_loss / count,
                  "train_acc": correct / count, "lr": opt.param_groups[-1]["lr"]}
        if sched is not None:
            sched.step()
        if val_data is not None:
            metrics = evaluate(model, val_data, batch_size=batch_size, device=device)
            record.update(val_loss=metrics["loss"], val_acc=metrics["acc"])
        # The epoch's last step was never checked by a loss after it: check its result.
        if guards.blown_up(model) or not math.isfinite(record.get("val_loss", 0.0)) or \
                record.get("val_loss", 0.0) > loss_bound(first_loss):
            value = float("nan") if guards.blown_up(model) else record["val_loss"]
            model.load_state_dict(good)
            raise TrainingDiverged(diverged_message(value, first_loss, epoch, step, opt,
                                                    after_epoch=True), history)
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in record.items()))
        if ckpt is not None:
            save_atomically(ckpt, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched else None,
                "scaler": scaler.state_dict() if scaler else None,
                "history": history.records, "marks": history.marks,
                # What the checkpoint belongs to, so resume=True can refuse another model's.
                "model_name": getattr(model, "name", type(model).__name__),
                "model_signature": model_signature(model),
                "optimizer_kind": type(opt).__name__,
                "optimizer_signature": optimizer_signature(opt)})
    return history
