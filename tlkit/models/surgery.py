"""Model surgery: freeze, unfreeze, new heads, parameter groups, batch-norm policy.

A :class:`~tlkit.models.backbone.Backbone` is split into *groups*: ``block0`` … ``block4`` (early to
late; the last one includes the pooling/neck) and ``head``. Every function here works on those
groups, so the same call means the same thing for VGG, ResNet, MobileNet or EfficientNet::

    tlkit.freeze(model)                      # train only the head (feature extraction)
    tlkit.unfreeze_last(model, 2)            # also train the last two blocks (fine-tuning)
    groups = tlkit.param_groups(model, lr=slice(1e-5, 1e-3))   # small LR early, large late
    torch.optim.SGD(groups, momentum=0.9)
    print(tlkit.summary(model))
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..core.checks import choice, flag, integer, number
from .backbone import BN_MODES, Backbone, require_backbone

__all__ = ["layer_groups", "freeze", "unfreeze", "freeze_to", "unfreeze_last", "replace_head",
           "param_groups", "set_batchnorm", "trainable_groups", "count_parameters", "summary",
           "Summary"]

_BN = nn.modules.batchnorm._BatchNorm


def layer_groups(model: Backbone) -> list[tuple[str, list[nn.Module]]]:
    """``[("block0", [...]), …, ("block4", [..., neck]), ("head", [head])]``."""
    require_backbone(model, function="layer_groups")
    blocks = list(model.blocks)
    groups = [(f"block{i}", [b]) for i, b in enumerate(blocks)]
    groups[-1][1].append(model.neck)  # the pooling/pre-logit layers go with the last block
    groups.append(("head", [model.head]))
    return groups


def _set_trainable(model: Backbone, trainable_groups: set[str]) -> Backbone:
    for name, modules in layer_groups(model):
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(name in trainable_groups)
    if model.bn_mode in ("train", "inference"):
        # "train" (fastai's train_bn): batch norm learns even inside frozen blocks;
        # "inference" (Keras): γ and β stay fixed even inside unfrozen blocks.
        for m in model.modules():
            if isinstance(m, _BN):
                for p in m.parameters():
                    p.requires_grad_(model.bn_mode == "train")
    model.train(model.training)  # re-apply the batch-norm policy to the new frozen set
    return model


def freeze(model: Backbone) -> Backbone:
    """Freeze every block; only the head trains (feature extraction).

    Example: ``tlkit.freeze(model)``
    """
    require_backbone(model, function="freeze")
    return freeze_to(model, len(model.blocks))


def unfreeze(model: Backbone) -> Backbone:
    """Make every parameter trainable (full fine-tuning).

    Example: ``tlkit.unfreeze(model)``
    """
    require_backbone(model, function="unfreeze")
    return freeze_to(model, 0)


def freeze_to(model: Backbone, n: int) -> Backbone:
    """Freeze the first ``n`` blocks, train the rest and the head (``n < 0`` counts from the end).

    Example: ``freeze_to(model, -2)`` trains the last two blocks and the head.
    """
    require_backbone(model, function="freeze_to")
    count = len(model.blocks)
    n = integer("n", n, hint=f"the number of blocks to freeze, -{count} to {count}")
    if not -count <= n <= count:
        raise ValueError(f"{model.name} has {count} blocks: n must be in [-{count}, {count}],"
                         f" got {n}")
    first_trainable = n % count if n < 0 else n
    names = {f"block{i}" for i in range(first_trainable, count)} | {"head"}
    return _set_trainable(model, names)


def unfreeze_last(model: Backbone, n: int) -> Backbone:
    """Train the last ``n`` blocks and the head; keep the earlier blocks frozen.

    Example: ``tlkit.unfreeze_last(model, 2)``
    """
    require_backbone(model, function="unfreeze_last")
    count = len(model.blocks)
    n = integer("n", n, hint=f"the number of blocks to unfreeze, 0 to {count}")
    if not 0 <= n <= count:
        raise ValueError(f"{model.name} has {count} blocks: n must be in [0, {count}], got {n}")
    return freeze_to(model, count - n)


def replace_head(model: Backbone, num_classes: int, *, hidden: int | None = None,
                 dropout: float = 0.0) -> Backbone:
    """Put a new randomly initialised head: one linear layer, or two with ``hidden`` units.
    Returns the model, like the other surgery functions (the new head is ``model.head``).

    Example: ``replace_head(model, 5, hidden=256, dropout=0.2)``
    """
    require_backbone(model, function="replace_head")
    num_classes = integer("num_classes", num_classes, min=1,
                          hint="the number of classes, e.g. len(train.classes)")
    dropout = number("dropout", dropout, min=0, max=0.99)
    if hidden is None:
        model.reset_head(num_classes, dropout=dropout)
        return model
    hidden = integer("hidden", hidden, min=1)
    model.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.num_features, hidden),
                               nn.ReLU(inplace=True), nn.Dropout(dropout),
                               nn.Linear(hidden, num_classes))
    return model


def group_learning_rates(lr: float | slice, n: int) -> list[float]:
    """One rate per group: a float for all, or ``slice(lo, hi)`` spread geometrically."""
    hint = "E.g. lr=1e-3, or lr=slice(1e-5, 1e-3) for smaller rates in earlier blocks"
    if isinstance(lr, slice):
        if lr.step is not None:
            raise ValueError(f"lr=slice(lo, hi) takes two rates, got a step too: {lr}")
        lo = number("lr's low end (slice start)", lr.start, above=0, hint=hint)
        hi = number("lr's high end (slice stop)", lr.stop, above=0, hint=hint)
        if lo > hi:
            raise ValueError(f"lr=slice(lo, hi) needs 0 < lo <= hi (block0 gets lo, the head hi), got {lr}")
        if n == 1:
            return [hi]
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    return [number("lr", lr, above=0, hint=hint)] * n


def param_groups(model: Backbone, *, lr: float | slice,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups with discriminative learning rates.

    ``lr=slice(1e-5, 1e-3)``: block0 gets 1e-5, the head 1e-3, the blocks between rates spread
    evenly on a log scale (earlier layers hold generic features: move them less). Frozen
    parameters are left out, so the optimizer never touches them.
    """
    require_backbone(model, function="param_groups")
    weight_decay = number("weight_decay", weight_decay, min=0)
    groups = layer_groups(model)
    rates = group_learning_rates(lr, len(groups))
    out = []
    for (name, modules), rate in zip(groups, rates):
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        if params:
            out.append({"params": params, "lr": rate, "name": name,
                        "weight_decay": weight_decay})
    if not out:
        raise ValueError(f"every parameter of {model.name} is frozen: nothing to train "
                         f"(call tlkit.unfreeze_last(model, n) or replace the head first)")
    return out


def set_batchnorm(model: Backbone, mode: str) -> Backbone:
    """Batch-norm policy while training; it lasts through later freeze/unfreeze calls.

    ``"inference"`` (default with pretrained weights): every batch-norm layer stays in eval
    mode with γ and β frozen, in unfrozen blocks too (Keras' advice for fine-tuning; lesson 05
    measures it ending best on a small data set).
    ``"frozen"`` (default with random weights): batch-norm layers inside frozen blocks stay in
    eval mode; those in unfrozen blocks train, with the statistics of each batch.
    ``"train"``: batch-norm layers always train — γ, β and statistics — even in frozen
    blocks (fastai's ``train_bn``), which can help when the new images look very different.

    Example: ``tlkit.set_batchnorm(model, "inference")``
    """
    require_backbone(model, function="set_batchnorm")
    choice("mode", mode, BN_MODES)
    trainable = set(trainable_groups(model))
    model.bn_mode = mode
    return _set_trainable(model, trainable)


def trainable_groups(model: Backbone) -> list[str]:
    """The groups that train now, judged by their layers other than batch norm (whose
    γ and β follow the batch-norm policy, not the freezing).

    Example: ``trainable_groups(tlkit.unfreeze_last(model, 1))`` → ``["block4", "head"]``
    """
    return [name for name, modules in layer_groups(model)
            if any(p.requires_grad for m in modules for sub in m.modules()
                   if not isinstance(sub, _BN) for p in sub.parameters(recurse=False))]


def count_parameters(model: nn.Module, *, trainable: bool | None = None) -> int:
    """Number of parameters: all (None), only trainable (True) or only frozen (False).

    Example: ``tlkit.count_parameters(model, trainable=True)``
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters takes a torch nn.Module, got {type(model).__name__}")
    if trainable is not None:
        trainable = flag("trainable", trainable)
    return sum(p.numel() for p in model.parameters()
               if trainable is None or p.requires_grad == trainable)


@dataclass(frozen=True)
class Summary:
    """Trainable / frozen parameters per group; prints as a table, renders in notebooks."""

    rows: list[tuple[str, int, int]]  # (group, trainable, frozen)

    @property
    def trainable(self) -> int:
        return sum(r[1] for r in self.rows)

    @property
    def frozen(self) -> int:
        return sum(r[2] for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'group':<8} {'trainable':>12} {'frozen':>12}"]
        lines += [f"{g:<8} {t:>12,} {f:>12,}" for g, t, f in self.rows]
        lines.append(f"{'total':<8} {self.trainable:>12,} {self.frozen:>12,}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><td>{g}</td><td>{t:,}</td><td>{f:,}</td></tr>"
                       for g, t, f in self.rows)
        return ("<table><tr><th>group</th><th>trainable</th><th>frozen</th></tr>" + body +
                f"<tr><th>total</th><th>{self.trainable:,}</th><th>{self.frozen:,}</th></tr>"
                "</table>")


def summary(model: Backbone) -> Summary:
    """Trainable and frozen parameter counts for each group of ``model``.

    Example: ``print(tlkit.summary(model))``
    """
    require_backbone(model, function="summary")
    rows = []
    for name, modules in layer_groups(model):
        params = [p for m in modules for p in m.parameters()]
        rows.append((name, sum(p.numel() for p in params if p.requires_grad),
                     sum(p.numel() for p in params if not p.requires_grad)))
    return Summary(rows)
