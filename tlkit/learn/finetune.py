"""The fine-tuning recipe (lesson 05): freeze → train the head → unfreeze → lower, spread rates.

Why in two phases: a new head starts random, so its first gradients are large and noisy.
Letting them flow into the pretrained blocks would scramble the features we came for. Train
the head alone first; then unfreeze and train everything with smaller rates — smallest for
the earliest, most generic blocks. ``gradual=True`` unfreezes one block per epoch instead
(ULMFiT). Batch norm follows the model's policy (``tlkit.set_batchnorm``): with pretrained
weights every batch-norm layer keeps its ImageNet statistics, in the unfrozen blocks too.

Example::

    model = tlkit.get_backbone("efficientnet_lite0", num_classes=2)
    history = tlkit.fine_tune(model, train, val_data=test, epochs=3, lr=1e-3)
    history.marks["unfreeze"]      # the epoch where the blocks were unfrozen
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from ..core.checks import describe, flag, integer, number
from ..models.backbone import Backbone, require_backbone
from ..models.surgery import freeze, trainable_groups, unfreeze_last
from .inputs import check_model
from .live import LiveCurve
from .train import Data, History, fit

__all__ = ["fine_tune"]


def fine_tune(model: Backbone, train_data: Data, *, val_data: Data | None = None, epochs: int = 3,
              freeze_epochs: int = 1, lr: float = 1e-3, lr_ratio: float = 100.0,
              unfreeze_blocks: int | None = None, gradual: bool = False,
              checkpoint_dir: str | Path | None = None, resume: bool = False,
              **fit_kwargs) -> History:
    """Train the head for ``freeze_epochs`` at ``lr``; then unfreeze (all blocks, or the last
    ``unfreeze_blocks``) and train ``epochs`` more at ``slice(lr / 2 / lr_ratio, lr / 2)``.
    Extra keyword arguments go to :func:`tlkit.fit`.

    ``gradual=True``: ULMFiT's gradual unfreezing (Howard & Ruder, 2018): the second phase
    unfreezes one more block per epoch, from the last, until ``unfreeze_blocks`` (default all)
    train. Every record's ``"trainable"`` lists the groups that trained in that epoch; the
    marks ``"+blockK"`` name the epoch each block joined. ``live=True`` draws both phases as
    one curve in the notebook, the unfreeze epoch marked. Example::

        history = tlkit.fine_tune(model, train, epochs=3, gradual=True)
        history["trainable"]  # [['head'], ['block4', 'head'], ['block3', 'block4', 'head'], ...]
        history.marks         # {'+block4': 1, '+block3': 2, '+block2': 3, 'unfreeze': 1}
    """
    require_backbone(model, function="fine_tune")
    check_model(model)
    # Every keyword fit will get, checked before the first freeze: a typo must not leave the
    # model frozen halfway.
    unknown = sorted(set(fit_kwargs) - set(inspect.signature(fit).parameters))
    if unknown:
        raise TypeError(f"fine_tune got unexpected keyword argument(s) {unknown}; it passes "
                        f"these on to tlkit.fit: {', '.join(list(inspect.signature(fit).parameters)[2:])}")
    if isinstance(lr, slice):
        raise TypeError(
            "fine_tune takes one lr, the head's rate, and spreads it over the blocks itself "
            "(lr/2/lr_ratio for the first block up to lr/2 for the last). For rates of your "
            "own use the two phases by hand: tlkit.freeze(model); tlkit.fit(model, data, "
            "lr=hi); tlkit.unfreeze(model); tlkit.fit(model, data, lr=slice(lo, hi))")
    lr = number("lr", lr, above=0)
    lr_ratio = number("lr_ratio", lr_ratio, min=1)
    freeze_epochs = integer("freeze_epochs", freeze_epochs, min=0)
    epochs = integer("epochs", epochs, min=1)
    if unfreeze_blocks is not None:
        unfreeze_blocks = integer("unfreeze_blocks", unfreeze_blocks, min=0,
                                  max=len(model.blocks))
    gradual = flag("gradual", gradual)
    if gradual and fit_kwargs.get("scheduler") is not None:
        raise ValueError("gradual=True trains each epoch with its own optimizer (one more block "
                         "each time), so a scheduler would restart every epoch: leave it out")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be a folder path, got {describe(checkpoint_dir)}")
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # live=True: one curve over both phases, the unfreeze epoch marked on it.
    if flag("live", fit_kwargs.get("live", False)):
        fit_kwargs["live"] = LiveCurve()
    curve = fit_kwargs.get("live") or None
    history = History()
    if freeze_epochs:
        freeze(model)
        history = _noted(model, fit(model, train_data, val_data=val_data, epochs=freeze_epochs,
                                    lr=lr, checkpoint_dir=ckpt / "head" if ckpt else None,
                                    resume=resume, **fit_kwargs))
    last = len(model.blocks) if unfreeze_blocks is None else unfreeze_blocks
    # fastai's choice: halve the rate once the head is trained, spread 100x across the blocks.
    high = lr / 2
    rates = slice(high / lr_ratio, high)
    if curve is not None:
        curve.mark("unfreeze")
    if not gradual:
        unfreeze_last(model, last)
        tuned = _noted(model, fit(model, train_data, val_data=val_data, epochs=epochs, lr=rates,
                                  checkpoint_dir=ckpt / "all" if ckpt else None, resume=resume,
                                  **fit_kwargs))
    else:
        tuned, seed = History(), fit_kwargs.pop("seed", 0)
        for epoch in range(epochs):
            blocks = min(epoch + 1, last)
            unfreeze_last(model, blocks)
            if blocks == epoch + 1 and blocks > 0:  # this epoch, one more block joined
                tuned.marks[f"+block{len(model.blocks) - blocks}"] = epoch
                if curve is not None and epoch:  # the first joins at the unfreeze line
                    curve.mark(f"+block{len(model.blocks) - blocks}")
            # One fit per epoch (the trainable set changes); its seed moves on with the epoch
            # so that each epoch still sees the batches in a new order.
            tuned += _noted(model, fit(model, train_data, val_data=val_data, epochs=1, lr=rates,
                                       seed=(seed + epoch) % 2**32, resume=resume,
                                       checkpoint_dir=ckpt / f"epoch{epoch}" if ckpt else None,
                                       **fit_kwargs))
    combined = history + tuned
    combined.marks["unfreeze"] = len(history)
    return combined


def _noted(model: Backbone, history: History) -> History:
    """``history`` with the groups that trained in each record."""
    trainable = trainable_groups(model)
    for record in history.records:
        record["trainable"] = trainable
    return history
