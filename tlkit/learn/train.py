"""The training loop: one function, read top to bottom (lessons 04 and 05).

``fit`` is the loop from lesson 03 — forward, loss, backward, ``w ← w − α·∇L`` — plus what a
real run needs: a progress bar, a history of every epoch, a checkpoint after each epoch that
``resume=True`` continues from, mixed precision on a GPU, and a run that blows up (a loss of
NaN, or a billion) stopping before the bad step, with its last good weights put back.

Where it runs — the device rule, the same for every tlkit function (tlkit/core/device.py): on
``device``, by default the GPU when there is one; afterwards the model is back where it was,
so ``model(x)`` and ``model.head(features)`` work after it; what tlkit returns is on the CPU.

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

from ..core.checks import choice, flag, integer, number, writable_folder
from ..core.device import as_device, autocast_dtype, available_cpus, running_on
from ..core.seed import seed_everything
from ..models.surgery import group_learning_rates
from .checkpoint import load_checkpoint, save_run, snapshot
from . import distributed, guards
from .guards import (CPUTrainingWarning, SlowTrainingWarning, TrainingDiverged, diverged_message,
                     loss_bound)
from .history import History
from .live import LiveCurve
from .optim import make_optimizer
from .inputs import (Data, as_dataset, batches, check_batch_labels, check_labels, check_model,
                     embeds_tokens, forward, output_width)

__all__ = ["fit", "evaluate", "History", "CPUTrainingWarning", "SlowTrainingWarning",
           "TrainingDiverged", "Data"]


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
    total_loss, correct, count = 0.0, 0, 0
    with running_on(model.eval(), device):  # the device rule: see tlkit/core/device.py
        for i, (x, y) in enumerate(batches(loader, name="data")):
            logits = forward(model, x.to(device), first=i == 0).float()
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
        resume: bool = False, mixed_precision: bool = True, num_workers: int | None = None,
        scheduler: str | None = None, progress: bool = True,
        on_batch: Callable[[int, int, float], None] | None = None,
        sync_batchnorm: bool = False, live: bool = False) -> History:
    """Train ``model`` on ``train_data`` (a Dataset, or cached features as a tuple ``(x, y)``).

    ``lr`` may be ``slice(lo, hi)`` for discriminative rates over a Backbone's groups. Frozen
    parameters are not given to the optimizer. With ``checkpoint_dir`` the state is saved after
    every epoch; ``resume=True`` continues from it and, on the CPU, ends with exactly the
    weights an uninterrupted run would have (every epoch is seeded from ``seed`` and its index).
    ``num_workers=None`` prepares batches in up to 8 worker processes on a GPU (which would
    otherwise wait for them) and in this process on a CPU.
    ``scheduler="cosine"`` anneals the rates to zero over the epochs. A loss that becomes NaN,
    infinite or absurdly large raises :class:`TrainingDiverged` before the step that would
    spread it, with the weights of the start of that epoch restored.

    Under ``torchrun --nproc_per_node=N`` the same call trains with DDP (learn/distributed.py):
    ``batch_size`` is per process, rank 0 alone writes checkpoints and progress, every process
    returns the same History; ``sync_batchnorm=True`` (GPUs) normalises over all N batches.
    ``live=True`` draws loss and accuracy in the notebook, redrawn after every epoch.
    """
    # Every argument is checked before any work: a typo must not cost an epoch.
    check_model(model)
    epochs = integer("epochs", epochs, min=1)
    batch_size = integer("batch_size", batch_size, min=1)
    seed = integer("seed", seed, min=0, max=2**32 - 1)
    num_workers = None if num_workers is None else integer("num_workers", num_workers, min=0)
    momentum = number("momentum", momentum, min=0, max=0.999)
    weight_decay = number("weight_decay", weight_decay, min=0)
    choice("scheduler", scheduler, (None, "cosine"))
    resume, progress = flag("resume", resume), flag("progress", progress)
    mixed_precision = flag("mixed_precision", mixed_precision)
    sync_batchnorm = flag("sync_batchnorm", sync_batchnorm)
    live = live if isinstance(live, LiveCurve) else flag("live", live)  # fine_tune shares one
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
    # Under torchrun: join the other processes, on this process's GPU (learn/distributed.py).
    ranks, device = distributed.join(device=as_device(device), sync_batchnorm=sync_batchnorm)
    seed_everything(seed)
    # The device rule, for every tlkit function: core/device.py.
    with running_on(model, device), ranks.synced_batchnorm(model, on=sync_batchnorm):
        return _train(model, dataset, val_data, epochs=epochs, lr=lr, optimizer=optimizer,
                      momentum=momentum, weight_decay=weight_decay, batch_size=batch_size,
                      seed=seed, device=device, ckpt=ckpt, resume=resume,
                      mixed_precision=mixed_precision, num_workers=num_workers,
                      scheduler=scheduler, progress=progress, on_batch=on_batch, ranks=ranks,
                      live=live)


def _train(model, dataset, val_data, *, epochs, lr, optimizer, momentum, weight_decay,
           batch_size, seed, device, ckpt, resume, mixed_precision, num_workers, scheduler,
           progress, on_batch, ranks, live) -> History:
    """fit's loop, with every argument checked and the model on ``device``."""
    progress = progress and ranks.main  # one process prints; all of them train
    curve = (live if isinstance(live, LiveCurve) else LiveCurve()) if live and ranks.main else None
    on_gpu = device.type == "cuda"
    if num_workers is None:  # a GPU waits for images decoded in this process: use others
        in_memory = isinstance(dataset, torch.utils.data.TensorDataset)  # nothing to decode
        num_workers = min(8, available_cpus() // ranks.world) if on_gpu and not in_memory else 0
    amp_dtype = autocast_dtype(device) if mixed_precision else None
    if on_gpu:
        # channels_last lets cuDNN use tensor-core convolution kernels without transposes.
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, optimizer, lr, momentum, weight_decay)
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
                          f"epochs={start_epoch + 1} or more to go on", stacklevel=3)
        elif progress:
            tqdm.write(f"resuming from {ckpt} after epoch {start_epoch} of {epochs}; the "
                       f"checkpoint's learning rates and optimizer state go on")
    elif ckpt is not None and ckpt.is_file():
        warnings.warn(f"{ckpt} holds an earlier run and will be overwritten after this epoch; "
                      f"pass resume=True to continue that run instead", stacklevel=3)
    elif resume and progress:
        tqdm.write(f"no checkpoint in {ckpt.parent} yet: starting from epoch 1")
    # The optimizer as the run starts: a first epoch that runs out of GPU memory starts again
    # from it, with half the batch.
    opt_start = snapshot(opt.state_dict())
    scaler_start = scaler.state_dict() if scaler is not None else None
    net = ranks.wrap(model)  # DDP under torchrun, for the steps; `model` is saved and scored

    width = output_width(model)
    first_loss = None
    epoch = start_epoch
    while epoch < epochs:
        # Seed each epoch from (seed, epoch): shuffling, dropout and augmentation are then the
        # same whether or not the run was interrupted and resumed before this epoch.
        seed_everything(ranks.seed(seed * 100_003 + epoch))
        loader = ranks.loader(dataset, batch_size=batch_size, seed=seed * 100_003, epoch=epoch,
                              num_workers=num_workers, pin_memory=on_gpu)
        # The weights as this epoch starts: put back if the loss blows up during it.
        good = {k: v.detach().clone() for k, v in model.state_dict().items()}
        net.train()
        started, first_step = time.perf_counter(), 0.0
        total_loss, correct, count = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        try:
            for step, (x, y) in enumerate(batches(bar, name="train_data")):
                check_batch_labels(y, width or 2**62, name="train_data")
                # non_blocking + pinned memory: the copy to the GPU overlaps with compute.
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if on_gpu and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    try:
                        logits = forward(model, x, step == 0 and epoch == start_epoch, net)
                    except Exception:
                        model.load_state_dict(good)  # batch-norm statistics may have moved
                        raise
                    if width is None:
                        width = logits.shape[1]
                        check_batch_labels(y.cpu(), width, name="train_data")
                    loss = nn.functional.cross_entropy(logits.float(), y)
                # .item() waits for the GPU: the step timings below are real. Under torchrun the
                # mean over processes: each then takes the same decision below.
                value = ranks.mean(loss)
                first_loss = value if first_loss is None else first_loss
                # Checked before the step: a NaN gradient applied once ruins every weight.
                if not math.isfinite(value) or value > loss_bound(first_loss):
                    model.load_state_dict(good)
                    raise TrainingDiverged(diverged_message(value, first_loss, epoch, step, opt,
                                                            x), history)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()  # w ← w − α·∇L for every parameter the optimizer holds
                total_loss += value * len(y)
                correct += (logits.argmax(1) == y).sum()  # on the device: no wait for the GPU
                count += len(y)
                bar.set_postfix(loss=f"{total_loss / count:.3f}")
                if epoch == start_epoch and ranks.main:  # how long will this take? say so early
                    elapsed = time.perf_counter() - started
                    first_step = elapsed if step == 0 else first_step
                    guards.estimate_epoch(step, elapsed, first_step, len(loader),
                                          epochs - epoch, on_gpu=on_gpu)
                if on_batch is not None:
                    on_batch(epoch, step, value)
            ranks.share_buffers(model)  # one model to score and save: rank 0's statistics
            total_loss, correct, count = ranks.total(total_loss, int(correct), count)
            # The rate this epoch used, before the scheduler sets the next one.
            record = {"epoch": epoch + 1, "train_loss": total_loss / count,
                      "train_acc": correct / count, "lr": opt.param_groups[-1]["lr"]}
            if val_data is not None:
                metrics = ranks.evaluate(evaluate, model, val_data, batch_size=batch_size)
                record.update(val_loss=metrics["loss"], val_acc=metrics["acc"])
        except torch.cuda.OutOfMemoryError as err:
            # Only the first epoch starts again: later, the batch has fitted before. Under
            # torchrun never: the others would wait for this process (torchrun stops them).
            if epoch != start_epoch or batch_size == 1 or ranks.world > 1:
                model.load_state_dict(good)
                raise guards.out_of_memory(err, batch_size) from None
            out_of_memory = True
        else:
            out_of_memory = False
        if out_of_memory:  # out here, the error no longer holds the failed step's GPU memory
            bar.close()
            x = y = logits = loss = bar = loader = None  # noqa: F841 — nor do these
            model.load_state_dict(good)
            good, first_loss = None, None
            opt.zero_grad(set_to_none=True)  # the failed step's gradients
            opt.load_state_dict(opt_start)
            if scaler is not None:  # a new one: a step cut short leaves marks in the old one
                scaler = torch.amp.GradScaler("cuda")
                scaler.load_state_dict(scaler_start)
            batch_size = guards.halve_batch(batch_size)
            continue
        if sched is not None:
            sched.step()
        # The epoch's last step was never checked by a loss after it: check its result.
        if guards.blown_up(model) or not math.isfinite(record.get("val_loss", 0.0)) or \
                record.get("val_loss", 0.0) > loss_bound(first_loss):
            value = float("nan") if guards.blown_up(model) else record["val_loss"]
            model.load_state_dict(good)
            raise TrainingDiverged(diverged_message(value, first_loss, epoch, step, opt,
                                                    after_epoch=True), history)
        record["seconds"] = ranks.slowest(time.perf_counter() - started)
        history.records.append(record)
        if curve is not None:
            curve.add(record)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in record.items()))
        if ckpt is not None:
            if ranks.main:  # one writer; the others wait for it, then resume finds one last.pt
                save_run(ckpt, epoch=epoch, model=model, optimizer=opt, scheduler=sched,
                         scaler=scaler, history=history)
            ranks.wait()
        epoch += 1
    return history
