"""What ``fit`` watches for, so that a run never goes wrong without saying so.

Before training: a final softmax (cross-entropy wants raw scores), images normalised for
another backbone, a frozen backbone with random weights, train and validation sets whose
classes differ. During training: a loss that turns NaN, infinite or absurd (``TrainingDiverged``,
raised before the step that would spread it), a slow CPU run. After each epoch: weights or a
validation loss that blew up on the epoch's last step.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..models.backbone import Backbone
from .history import History
from .inputs import classes_of

__all__ = ["TrainingDiverged", "SlowTrainingWarning", "CPUTrainingWarning", "warn_about_setup",
           "check_classes_match", "loss_bound", "diverged_message", "estimate_epoch",
           "halve_batch", "out_of_memory"]

# Say how long training will take when one epoch looks longer than this (seconds): on a CPU
# soon (a GPU would be much faster), on a GPU only for long epochs.
CPU_WARNING_SECONDS = 20.0
GPU_WARNING_SECONDS = 120.0


class TrainingDiverged(FloatingPointError):
    """The loss became NaN, infinite or absurdly large; ``history`` holds the finished epochs."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class SlowTrainingWarning(UserWarning):
    """One epoch will take a while; the message estimates how long the run has left."""


class CPUTrainingWarning(SlowTrainingWarning):
    """Training runs on the CPU and will take a while."""


def warn_about_setup(model: nn.Module, data: torch.utils.data.Dataset) -> None:
    """Warnings for set-ups that train, but not what the learner meant."""
    last = [m for m in model.modules() if not list(m.children())]
    if last and isinstance(last[-1], (nn.Softmax, nn.Sigmoid)):
        warnings.warn(f"the model ends in {type(last[-1]).__name__}, but fit's cross-entropy "
                      f"applies softmax itself and wants raw scores: remove that last layer "
                      f"(it makes learning much slower)", UserWarning, stacklevel=3)
    if not isinstance(model, Backbone):
        return
    if not model.weights.pretrained and not any(
            p.requires_grad for b in model.blocks for p in b.parameters()):
        warnings.warn(f"{model.name} has random weights (weights=None) and frozen blocks: its "
                      f"features are random, so nothing is transferred. Build it with "
                      f"weights='imagenet' for feature extraction", UserWarning, stacklevel=3)
    normalize = _normalize_of(getattr(data, "transform", None))
    if normalize is not None and model.weights.pretrained and not (
            _close(normalize.mean, model.weights.mean) and _close(normalize.std, model.weights.std)):
        warnings.warn(f"the data is normalised with mean {tuple(normalize.mean)}, but "
                      f"{model.name}'s weights expect {model.weights.mean}: use "
                      f"model.weights.transforms(), the preprocessing these weights were "
                      f"trained with", UserWarning, stacklevel=3)


def check_classes_match(train: torch.utils.data.Dataset, val: torch.utils.data.Dataset) -> None:
    """Label 0 must mean the same class in both, or the validation scores are meaningless."""
    a, b = classes_of(train), classes_of(val)
    if a is not None and b is not None and a != b:
        raise ValueError(f"train_data's classes {a} and val_data's classes {b} differ, so the "
                         f"same label means different classes in each. Give both folders the "
                         f"same class sub-folders")


def loss_bound(first_loss: float) -> float:
    """A mean cross-entropy above this is a run that blew up, not one that learns slowly."""
    return max(100.0, 50 * first_loss)


def diverged_message(value: float, first: float, epoch: int, step: int, opt,
                     x: torch.Tensor | None = None, *, after_epoch: bool = False) -> str:
    restored = (f"The weights were put back to the start of epoch {epoch + 1}, before the bad "
                f"step; finished epochs are in err.history.")
    if after_epoch:
        rate = max(g["lr"] for g in opt.param_groups)
        seen = "the weights became NaN or infinite" if not math.isfinite(value) else \
            f"the validation loss reached {value:.3g}"
        return (f"training stopped after epoch {epoch + 1}: after its last step {seen} (the "
                f"training loss started at {first:.3g}), so the learning rate is probably too "
                f"high. {restored} Try a rate 10× lower, e.g. lr={rate / 10:.1g}.")
    if x is not None and x.is_floating_point() and not torch.isfinite(x).all():
        return (f"training stopped at epoch {epoch + 1}, step {step}: the batch itself holds "
                f"NaN or infinite values, so the loss became {value}. Check the data or the "
                f"transform (a division by zero?). {restored}")
    rate = max(g["lr"] for g in opt.param_groups)
    what = f"became {value}" if not math.isfinite(value) else f"reached {value:.3g}"
    return (f"training stopped at epoch {epoch + 1}, step {step}: the loss {what} (it started "
            f"at {first:.3g}), so the learning rate is probably too high. {restored} Try a "
            f"rate 10× lower, e.g. lr={rate / 10:.1g}.")


def blown_up(model: nn.Module) -> bool:
    """True when a trainable weight is NaN or infinite (one reduction per tensor, per epoch)."""
    return any(not torch.isfinite(p).all() for p in model.parameters() if p.requires_grad)


def estimate_epoch(step: int, elapsed: float, first_step: float, steps: int, epochs_left: int,
                   *, on_gpu: bool) -> None:
    """After the first steps of a run, warn when an epoch will be long, with an estimate.

    ``elapsed``: seconds since the epoch began; ``first_step``: what the first step took. On a
    CPU the first two steps time it. On a GPU the first step also picks cuDNN's kernels and is
    slower than the rest, so steps two and three time it.
    """
    if not on_gpu and step == 1:
        _warn_slow(elapsed / 2 * steps, steps, epochs_left, CPU_WARNING_SECONDS, "the CPU")
    elif on_gpu and step == 2:
        per_step = (elapsed - first_step) / 2
        _warn_slow(first_step + per_step * (steps - 1), steps, epochs_left,
                   GPU_WARNING_SECONDS, "the GPU")


def _warn_slow(per_epoch: float, steps: int, epochs_left: int, limit: float, where: str) -> None:
    if per_epoch <= limit:
        return
    when = f"{per_epoch * epochs_left / 60:.1f} min for the {epochs_left} epoch(s) left"
    if where == "the CPU":
        warnings.warn(
            f"Training on the CPU: about {per_epoch:.0f} s per epoch ({steps} batches), {when}. "
            f"A GPU is much faster (on Colab: Runtime → Change runtime type → GPU); or use "
            f"cached features (tlkit.extract_features) or smaller images.",
            CPUTrainingWarning, stacklevel=5)
    else:
        warnings.warn(
            f"Training on the GPU: about {per_epoch:.0f} s per epoch ({steps} batches), {when}. "
            f"For a quicker run use cached features (tlkit.extract_features), smaller images "
            f"(transforms(size=...)) or fewer epochs.", SlowTrainingWarning, stacklevel=5)


def halve_batch(batch_size: int) -> int:
    """The batch size to retry with after the GPU ran out of memory; says so."""
    smaller = batch_size // 2
    warnings.warn(f"batch_size={batch_size} does not fit in GPU memory: starting the epoch again "
                  f"with batch_size={smaller}. Pass batch_size={smaller} (or less) to skip this "
                  f"retry next time.", UserWarning, stacklevel=4)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # give the failed batch's memory back before the retry
    return smaller


def out_of_memory(err: BaseException, batch_size: int) -> RuntimeError:
    """The error for a GPU that ran out of memory where halving the batch cannot help."""
    return torch.cuda.OutOfMemoryError(
        f"The GPU ran out of memory with batch_size={batch_size} ({str(err).splitlines()[0]}). "
        f"Use a smaller batch_size, smaller images (transforms(size=...)), a smaller backbone, "
        f"or cached features (tlkit.extract_features); on Colab, Runtime → Restart frees memory "
        f"held by earlier cells.")


def _normalize_of(transform):
    """The Normalize step of a torchvision pipeline, if it has exactly one."""
    steps = getattr(transform, "transforms", [transform])
    found = [t for t in steps if type(t).__name__ == "Normalize" and hasattr(t, "mean")]
    return found[0] if len(found) == 1 else None


def _close(a, b) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-3 for x, y in zip(a, b))
