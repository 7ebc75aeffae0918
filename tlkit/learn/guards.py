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

__all__ = ["TrainingDiverged", "CPUTrainingWarning", "warn_about_setup", "check_classes_match",
           "loss_bound", "diverged_message", "warn_if_slow"]

# Warn about CPU training when one epoch looks longer than this (seconds).
CPU_WARNING_SECONDS = 20.0


class TrainingDiverged(FloatingPointError):
    """The loss became NaN, infinite or absurdly large; ``history`` holds the finished epochs."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class CPUTrainingWarning(UserWarning):
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


def warn_if_slow(two_steps: float, steps: int, epochs_left: int) -> None:
    per_epoch = two_steps / 2 * steps
    if per_epoch > CPU_WARNING_SECONDS:
        warnings.warn(
            f"Training on the CPU: about {per_epoch:.0f} s per epoch ({steps} batches), "
            f"{per_epoch * epochs_left / 60:.1f} min for the {epochs_left} epoch(s) left. A GPU "
            f"is much faster (on Colab: Runtime → Change runtime type → GPU); or use cached "
            f"features (tlkit.extract_features) or smaller images.",
            CPUTrainingWarning, stacklevel=4)


def _normalize_of(transform):
    """The Normalize step of a torchvision pipeline, if it has exactly one."""
    steps = getattr(transform, "transforms", [transform])
    found = [t for t in steps if type(t).__name__ == "Normalize" and hasattr(t, "mean")]
    return found[0] if len(found) == 1 else None


def _close(a, b) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-3 for x, y in zip(a, b))
