"""Interactive explorers for the lessons (ipywidgets).

``unfreeze_explorer`` (lesson 05): choose how many blocks to unfreeze and the learning rates,
watch the trainable-parameter count of every group change, and train a few steps to see the
loss respond.
"""
from __future__ import annotations

from ..core.checks import integer
from ..learn.inputs import Data, as_dataset
from ..learn.train import fit
from ..models.backbone import Backbone, require_backbone
from ..models.surgery import (group_learning_rates, layer_groups, set_batchnorm, summary,
                              unfreeze_last)

__all__ = ["unfreeze_explorer", "UnfreezeExplorer"]


class UnfreezeExplorer:
    """Sliders for unfreeze depth and learning rates, a live table, a *Train* button."""

    def __init__(self, model: Backbone, train_data: Data, *, val_data: Data | None = None,
                 steps: int = 4, batch_size: int = 8) -> None:
        import ipywidgets as w

        require_backbone(model, function="unfreeze_explorer")
        steps = integer("steps", steps, min=1)
        batch_size = integer("batch_size", batch_size, min=1)
        self.model, self.val_data, self.batch_size = model, val_data, batch_size
        dataset = as_dataset(train_data, name="train_data")
        # "A few steps": the first steps × batch_size images make one short epoch.
        import torch
        self.train_data = torch.utils.data.Subset(dataset, range(min(len(dataset),
                                                                     steps * batch_size)))
        n = len(model.blocks)
        self.blocks = w.IntSlider(value=1, min=0, max=n, description="unfreeze last",
                                  continuous_update=False)
        self.head_lr = w.FloatLogSlider(value=1e-3, base=10, min=-5, max=-1,
                                        description="head lr", readout_format=".0e")
        self.ratio = w.FloatLogSlider(value=100, base=10, min=0, max=3,
                                      description="lr ratio", readout_format=".0f")
        self.bn = w.ToggleButtons(options=["inference", "frozen", "train"], description="batch norm")
        self.table = w.HTML()
        self.button = w.Button(description=f"Train {steps} steps", button_style="primary")
        self.log = w.HTML()
        for control in (self.blocks, self.head_lr, self.ratio, self.bn):
            control.observe(lambda _: self.refresh(), names="value")
        self.button.on_click(lambda _: self.train())
        self.widget = w.VBox([w.HBox([self.blocks, self.bn]), w.HBox([self.head_lr, self.ratio]),
                              self.table, self.button, self.log])
        self.refresh()

    def rates(self) -> list[float]:
        """Learning rate of each group: head at ``head lr``, block0 ``ratio`` times lower."""
        hi = self.head_lr.value
        return group_learning_rates(slice(hi / self.ratio.value, hi),
                                    len(layer_groups(self.model)))

    def refresh(self) -> None:
        unfreeze_last(self.model, self.blocks.value)
        set_batchnorm(self.model, self.bn.value)
        table = summary(self.model)
        rows = "".join(
            f"<tr><td>{g}</td><td style='text-align:right'>{t:,}</td>"
            f"<td style='text-align:right'>{f:,}</td><td>{lr:.1e}</td></tr>"
            for (g, t, f), lr in zip(table.rows, self.rates()))
        self.table.value = (
            "<table><tr><th>group</th><th>trainable</th><th>frozen</th><th>lr</th></tr>"
            f"{rows}</table><p>trainable parameters: <b class='tlkit-trainable'>"
            f"{table.trainable:,}</b> of {table.trainable + table.frozen:,}</p>")

    def train(self) -> None:
        self.log.value = "<div>training…</div>" + self.log.value
        history = fit(self.model, self.train_data, val_data=self.val_data, epochs=1,
                      lr=slice(self.head_lr.value / self.ratio.value, self.head_lr.value),
                      batch_size=self.batch_size, progress=False)
        record = history.records[-1]
        shown = ", ".join(f"{k} {v:.3f}" for k, v in record.items()
                          if k in ("train_loss", "val_loss", "val_acc"))
        # Newest first, so the latest result is next to the button.
        self.log.value = self.log.value.replace("<div>training…</div>", f"<div>{shown}</div>", 1)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def unfreeze_explorer(model: Backbone, train_data: Data, *, val_data: Data | None = None,
                      steps: int = 4, batch_size: int = 8) -> UnfreezeExplorer:
    """An explorer for ``model``; display it as the last line of a cell.

    Example: ``tlkit.unfreeze_explorer(model, train, val_data=test)``
    """
    return UnfreezeExplorer(model, train_data, val_data=val_data, steps=steps,
                            batch_size=batch_size)
