"""Looking inside a result: which classes a model confuses, and how its features lie.

An accuracy is one number; it does not say *which* images go wrong. A confusion matrix does
(rows: the true class, columns: the prediction). A feature map draws every image's feature
vector in two dimensions (PCA by default, t-SNE on request), coloured by class: classes that
a linear head can separate show as separate clouds, and fine-tuning pulls them apart.

Example::

    tlkit.plot_confusion(model, test)
    tlkit.plot_feature_map(tlkit.extract_features(model, test), title="after fine-tuning")
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["plot_confusion", "plot_feature_map", "predictions"]


def _axes(ax, size=(4, 3.4)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size)
    elif not hasattr(ax, "plot"):
        raise TypeError(f"ax must be one matplotlib Axes, got {type(ax).__name__}; from "
                        f"plt.subplots(1, 2) pass one of them, e.g. ax=axes[0]")
    return ax


def _xy(data) -> tuple[np.ndarray, np.ndarray] | None:
    """``(x, y)`` as arrays when ``data`` are cached features or a pair; None for a data set."""
    from ..learn.features import Features

    if isinstance(data, Features) or (isinstance(data, (tuple, list)) and len(data) == 2):
        x, y = data
        return np.asarray(torch.as_tensor(x).float()), np.asarray(torch.as_tensor(y)).ravel()
    return None


def predictions(model: Any, data: Any, *, batch_size: int = 64,
                device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(true, predicted)`` class indices of ``model`` on ``data``: a network on a data set or
    on cached features ``(x, y)``, or a fitted scikit-learn classifier on ``(x, y)``.

    Example: ``y_true, y_pred = tlkit.predictions(model, test)``
    """
    pair = _xy(data)
    if hasattr(model, "predict") and not isinstance(model, torch.nn.Module):
        if pair is None:  # scikit-learn sees arrays, not images
            raise TypeError(f"a scikit-learn classifier predicts from features: pass (x, y) or "
                            f"tlkit.extract_features(backbone, data), got {type(data).__name__}")
        return pair[1], np.asarray(model.predict(pair[0]))
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a network (torch.nn.Module) or a fitted scikit-learn "
                        f"classifier, got {type(model).__name__}")
    from ..core.checks import integer
    from ..core.device import as_device, running_on
    from ..learn.inputs import as_dataset, batches, check_model, embeds_tokens, forward

    check_model(model)
    batch_size = integer("batch_size", batch_size, min=1)
    device = as_device(device)
    dataset = as_dataset(data, name="data", token_ids=embeds_tokens(model))
    if len(dataset) == 0:
        raise ValueError("data is empty: there is nothing to predict")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    true, predicted, was_training = [], [], model.training
    with torch.no_grad(), running_on(model.eval(), device):  # the device rule: core/device.py
        for i, (x, y) in enumerate(batches(loader, name="data")):
            predicted.append(forward(model, x.to(device), first=i == 0).argmax(1).cpu())
            true.append(torch.as_tensor(y))
    model.train(was_training)
    return torch.cat(true).numpy(), torch.cat(predicted).numpy()


def _class_names(data, classes, count: int) -> list[str]:
    if classes is None:
        classes = getattr(data, "classes", None) or [str(i) for i in range(count)]
    classes = [str(c) for c in classes]
    if len(classes) < count:
        raise ValueError(f"{len(classes)} class names for labels up to {count - 1}: pass one "
                         f"name per class, e.g. classes={list(map(str, range(count)))}")
    return classes


def plot_confusion(model: Any, data: Any, *, classes: Sequence[str] | None = None,
                   ax: Any = None, device: torch.device | str | None = None):
    """The confusion matrix of ``model`` on ``data`` (counts; rows true, columns predicted),
    titled with the accuracy. ``model`` and ``data`` as for :func:`predictions`.

    Example: ``tlkit.plot_confusion(model, test)``
    """
    true, predicted = predictions(model, data, device=device)
    if len(true) == 0:
        raise ValueError("data is empty: there is nothing to count")
    if true.min() < 0 or predicted.min() < 0:
        raise ValueError("labels must be class indices 0, 1, 2, …: got a negative one")
    count = int(max(true.max(), predicted.max())) + 1
    names = _class_names(data, classes, count)
    matrix = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(matrix, (true.astype(int), predicted.astype(int)), 1)
    ax = _axes(ax, size=(1.2 + 0.6 * len(names), 1 + 0.6 * len(names)))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {np.trace(matrix) / matrix.sum():.1%} on {matrix.sum()} images",
                 fontsize=9)
    return ax


def plot_feature_map(features: Any, *, method: str = "pca", classes: Sequence[str] | None = None,
                     ax: Any = None, title: str | None = None, seed: int = 0):
    """Every feature vector as a point in 2-D, coloured by class: ``method="pca"`` (a linear
    view: what a linear head sees) or ``"tsne"`` (neighbourhoods kept, distances not).
    ``features``: ``tlkit.extract_features(...)`` or a pair ``(x, y)``.

    Example: ``tlkit.plot_feature_map(tlkit.extract_features(model, test), title="before")``
    """
    from ..core.checks import choice

    choice("method", method, ("pca", "tsne"))
    pair = _xy(features)
    if pair is None:
        raise TypeError(f"plot_feature_map takes features: tlkit.extract_features(backbone, "
                        f"data) or a pair (x, y), got {type(features).__name__}")
    x, y = pair
    if x.ndim != 2 or len(x) != len(y) or len(x) < 3 or x.shape[1] < 2:
        raise ValueError(f"features must be (N, D) with one label each, N >= 3 and D >= 2: got "
                         f"x of shape {x.shape} and {len(y)} labels")
    if not np.isfinite(x).all():
        raise ValueError("the features hold NaN or infinite values: a diverged model, or "
                         "images that were never normalised; extract them again")
    if len(y) and (y.min() < 0 or not np.all(np.equal(np.mod(y, 1), 0))):
        raise ValueError("labels must be class indices 0, 1, 2, …")
    if method == "pca":
        from sklearn.decomposition import PCA

        reducer = PCA(n_components=2, random_state=seed)
    else:
        from sklearn.manifold import TSNE

        reducer = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed,
                       init="pca")
    points = reducer.fit_transform(x)
    names = _class_names(None, classes, int(y.max()) + 1)
    ax = _axes(ax)
    for c in np.unique(y).astype(int):
        ax.scatter(*points[y == c].T, s=12, alpha=0.7, label=names[c])
    ax.set_xticks([])
    ax.set_yticks([])
    if method == "pca":
        share = reducer.explained_variance_ratio_
        ax.set_xlabel(f"PC 1 ({share[0]:.0%} of the variance)", fontsize=8)
        ax.set_ylabel(f"PC 2 ({share[1]:.0%})", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=1.5)
    return ax
