"""What a training run leaves behind: one record per epoch, and named epochs (marks)."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """One record per epoch; ``history["val_acc"]`` gives a column, ``marks`` named epochs.

    Example::

        history = tlkit.fit(model, train, val_data=test, epochs=3)
        history["val_acc"]        # [0.81, 0.86, 0.88]
        history.metrics           # ['train_loss', 'train_acc', 'lr', 'val_loss', 'val_acc', ...]
    """

    records: list[dict] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """Every column some epoch recorded, in the order they first appear."""
        return list(dict.fromkeys(k for r in self.records for k in r if k != "epoch"))

    def __getitem__(self, key: str) -> list:
        if not isinstance(key, str):
            raise TypeError(f"index a History by a metric name such as 'val_acc', got {key!r}; "
                            f"history.records[{key!r}] gives one epoch's record")
        if self.records and key != "epoch" and key not in self.metrics:
            raise KeyError(f"no metric {key!r} in this history; it has: "
                           f"{', '.join(self.metrics)}")
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __add__(self, other: "History") -> "History":
        if not isinstance(other, History):
            return NotImplemented
        shift = len(self.records)
        records = self.records + [{**r, "epoch": r["epoch"] + shift} for r in other.records]
        marks = {**self.marks, **{k: v + shift for k, v in other.marks.items()}}
        return History(records, marks)

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items()
                          if isinstance(v, float) and k != "seconds")
        return f"History({len(self)} epochs; last: {shown})"
