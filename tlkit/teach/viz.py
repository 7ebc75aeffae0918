"""Plots the lessons use: training curves, data-efficiency curves, image grids, similarities.

Each function draws on a matplotlib ``Axes`` (a new figure if none is given) and returns it,
so a lesson can add titles or combine plots.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..data.images import ImageDataset
    from ..learn.history import History

__all__ = ["plot_history", "plot_data_efficiency", "plot_similarity", "show_images",
           "show_augmented"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.5))
    return ax


def _one_axes(ax):
    if ax is not None and not hasattr(ax, "plot"):
        raise TypeError(f"ax must be one matplotlib Axes, got {type(ax).__name__}; from "
                        f"plt.subplots(1, 2) pass one of them, e.g. ax=axes[0]")
    return _axes(ax)


def plot_history(history: "History", *, metrics: Sequence[str] | None = None,
                 ax: Any = None):
    """Curves of ``metrics`` per epoch (default: the training and, if recorded, validation
    loss); a dashed line marks each of ``history.marks``.

    Example: ``tlkit.plot_history(history, metrics=["train_acc", "val_acc"])``
    """
    from ..learn.history import History

    if not isinstance(history, History):
        raise TypeError(f"plot_history takes the History that tlkit.fit returns, got "
                        f"{type(history).__name__}")
    if metrics is None:  # the losses it has: val_loss only when fit was given val_data
        metrics = [m for m in ("train_loss", "val_loss") if m in history.metrics]
    if isinstance(metrics, str):  # "val_acc" alone would otherwise be read letter by letter
        metrics = [metrics]
    if not len(history):
        raise ValueError("this History has no epochs yet: train first (tlkit.fit)")
    unknown = [m for m in metrics if m not in history.metrics]
    if unknown or not metrics:
        raise ValueError(f"no metric {', '.join(map(repr, unknown)) or '(none given)'} in this "
                         f"history; it has: {', '.join(history.metrics)} (val_* only when fit "
                         f"was given val_data)")
    ax = _one_axes(ax)
    epochs = history["epoch"]
    for name in metrics:
        values = history[name]
        ax.plot(epochs, values, marker="o", label=name)
    for label, epoch in history.marks.items():
        ax.axvline(epoch + 0.5, color="grey", linestyle="--")
        ax.annotate(label, (epoch + 0.5, ax.get_ylim()[1]), ha="center", va="bottom",
                    fontsize=8, color="grey")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    ax.legend()
    return ax


def plot_data_efficiency(results: Mapping[str, Mapping[int, Sequence[float]]], *,
                         ax: Any = None, ylabel: str = "test accuracy",
                         xlabel: str = "labelled images per class", error: str = "std"):
    """Accuracy against labels per class, one line per method, with error bars over seeds:
    ``error="std"`` (the spread of one run) or ``"se"`` (the standard error of the mean,
    std / √n: is a gap between two means real?).

    ``results[method][k]`` is the list of accuracies over seeds with ``k`` labels per class.
    Example: ``tlkit.plot_data_efficiency({"features": {2: [0.8, 0.9]}}, error="se")``
    """
    from ..core.checks import choice

    choice("error", error, ("std", "se"))
    results = _as_results(results)
    ax = _one_axes(ax)
    for method, by_k in results.items():
        ks = sorted(by_k)
        means = [float(np.mean(by_k[k])) for k in ks]
        bars = [float(np.std(by_k[k])) / (np.sqrt(len(by_k[k])) if error == "se" else 1)
                for k in ks]
        ax.errorbar(ks, means, yerr=bars, marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xticks(sorted({k for by_k in results.values() for k in by_k}))
    ax.get_xaxis().set_major_formatter("{x:g}")
    ax.get_xaxis().set_minor_formatter("")  # no "3×10⁰" labels between the ticks
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} (mean ± {'SE' if error == 'se' else 'std'})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_similarity(embeddings: Any, labels: Sequence[str], *, ax: Any = None):
    """The cosine similarity of every pair of rows of ``embeddings``, as a labelled heat map.

    Example: ``tlkit.plot_similarity(encoder.encode(sentences), sentences)``
    """
    import torch

    e = torch.as_tensor(embeddings, dtype=torch.float32)
    if e.dim() != 2 or len(e) != len(labels):
        raise ValueError(f"embeddings must be (N, D) with one label per row: got "
                         f"{tuple(e.shape)} and {len(labels)} labels")
    e = torch.nn.functional.normalize(e, dim=1)
    sims = (e @ e.T).numpy()
    ax = _one_axes(ax)
    image = ax.imshow(sims, vmin=-0.2, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)), [f"{i + 1}" for i in range(len(labels))])
    ax.set_yticks(range(len(labels)), [f"{i + 1}. {t}" for i, t in enumerate(labels)])
    for (i, j), value in np.ndenumerate(sims):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="black" if value > 0.5 else "white")
    ax.figure.colorbar(image, ax=ax, label="cosine similarity")
    return ax


def _as_results(results) -> dict[str, dict[int, list[float]]]:
    """``{method: {k: [accuracies]}}`` with whole-number k > 0; one accuracy may stand alone."""
    example = "{'features + LR': {2: [0.8, 0.85], 5: [0.9, 0.92]}}"
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results must map each method to {{k: [accuracy per seed]}}, e.g. "
                         f"{example}")
    clean = {}
    for method, by_k in results.items():
        if not isinstance(by_k, Mapping) or not by_k:
            raise ValueError(f"results[{method!r}] must map k to accuracies, e.g. {example}")
        clean[method] = {}
        for k, values in by_k.items():
            try:
                k = int(k)  # JSON turns the k into strings: "10" sorts before "2"
            except (TypeError, ValueError):
                raise ValueError(f"results[{method!r}] has the key {k!r}: keys are labels per "
                                 f"class (whole numbers)") from None
            values = [values] if isinstance(values, (int, float)) else list(values)
            if k < 1 or not values:
                raise ValueError(f"results[{method!r}][{k}] needs k >= 1 and at least one "
                                 f"accuracy per seed, e.g. {example}")
            clean[method][k] = [float(v) for v in values]
    return clean


def show_images(data: "ImageDataset", *, n: int = 8, ax: Any = None,
                title: bool = True):
    """``n`` images spread over a tlkit data set, in a row, titled with their class (the
    images as stored, before the transform).

    Example: ``tlkit.show_images(train, n=8)``
    """
    import matplotlib.pyplot as plt

    from ..core.checks import integer

    if not hasattr(data, "load_image"):
        raise TypeError(f"show_images takes a tlkit data set (tlkit.load_dataset, "
                        f"tlkit.image_folder), got {type(data).__name__}")
    n = integer("n", n, min=1)
    if len(data) == 0:
        raise ValueError(f"{data!r} is empty: there are no images to show")
    n = min(n, len(data))
    if ax is None:
        _, ax = plt.subplots(1, n, figsize=(1.6 * n, 1.9))
    axes = np.atleast_1d(ax).ravel()
    if len(axes) < n:
        raise ValueError(f"{n} images need {n} axes, got {len(axes)}: pass n={len(axes)}, or "
                         f"ax=plt.subplots(1, {n})[1]")
    # Spread over the whole set: tlkit's data sets are sorted by class, so the first n images
    # would all show the first class.
    for a, i in zip(axes[:n], np.linspace(0, len(data) - 1, n).round().astype(int)):
        a.imshow(data.load_image(int(i)))
        a.set_axis_off()
        if title:
            a.set_title(data.classes[data.targets[int(i)]], fontsize=8)
    return axes


def show_augmented(data: "ImageDataset", *, index: int = 0, n: int = 6, ax: Any = None):
    """Image ``index`` of ``data`` as stored, then ``n`` draws through the data set's own
    (random) transform, as the network would see them — what augmentation does, shown.

    Example::

        augment = model.weights.transforms(size=64, augment=True)
        tlkit.show_augmented(train.with_transform(augment), n=6)
    """
    import matplotlib.pyplot as plt
    import torch

    from ..core.checks import integer

    if not hasattr(data, "load_image"):
        raise TypeError(f"show_augmented takes a tlkit data set (tlkit.load_dataset, "
                        f"tlkit.image_folder), got {type(data).__name__}")
    n = integer("n", n, min=1)
    index = integer("index", index, min=0, max=len(data) - 1)
    if data.transform is None:
        raise ValueError("this data set has no transform, so there is nothing to draw: pass "
                         "data.with_transform(model.weights.transforms(augment=True))")
    if ax is None:
        _, ax = plt.subplots(1, n + 1, figsize=(1.6 * (n + 1), 1.9))
    axes = np.atleast_1d(ax).ravel()
    if len(axes) < n + 1:
        raise ValueError(f"the stored image and {n} draws need {n + 1} axes, got {len(axes)}")
    axes[0].imshow(data.load_image(index))
    axes[0].set_title("stored", fontsize=8)
    mean, std = _normalisation(data.transform)
    for i, a in enumerate(axes[1:n + 1]):
        x = data[index][0]
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            raise TypeError(f"the transform must give an image tensor (C, H, W), got "
                            f"{type(x).__name__}")
        # Undo Normalize so that the draw shows colours, not standardised numbers.
        shown = (x * std[:, None, None] + mean[:, None, None]).clamp(0, 1)
        a.imshow(shown.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if len(x) == 1 else None)
        a.set_title(f"draw {i + 1}", fontsize=8)
    for a in axes:
        a.set_axis_off()
    return axes


def _normalisation(transform):
    """The mean and std of the transform's last ``Normalize`` (0 and 1 when it has none)."""
    import torch

    steps = getattr(transform, "transforms", [transform])
    norms = [t for t in steps if type(t).__name__ == "Normalize"]
    if not norms:
        return torch.zeros(1), torch.ones(1)
    return torch.tensor(norms[-1].mean), torch.tensor(norms[-1].std)
