"""Checks for ex03_feature_extraction: frozen Lite0 features and a head trained on them.

The student writes ``features(images)`` — pooled features (N, 1280) of the frozen, pretrained
Lite0 for a batch of preprocessed images — and ``predict(images)``, class labels from a head
trained on cached training features. The accuracy is measured on test images drawn at grading
time from the held-out split, which the student never trains on.
"""
from __future__ import annotations

import numpy as np
import torch

from . import Arrays, Check, CheckFailed, register

SIZE = 96  # the crop the exercise uses: 25×25 faces gain nothing from 224
PER_CLASS = 15  # test images per class drawn for the accuracy check
BAR = 0.85  # Lite0 features + logistic regression reach about 0.94 with 10 labels per class


def _test_batch(seed: int) -> tuple[torch.Tensor, np.ndarray]:
    from ..models.factory import backbone_weights
    from ..data.catalog import load_dataset

    data = load_dataset("faces", split="test",
                        transform=backbone_weights("efficientnet_lite0").transforms(size=SIZE))
    labels = np.array([data[i][1] for i in range(len(data))])
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False)
                             for c in np.unique(labels)])
    rng.shuffle(chosen)
    return torch.stack([data[int(i)][0] for i in chosen]), labels[chosen]


def _random_batch(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(3, 3, SIZE, SIZE)).astype(np.float32))


def _features_probe(ns: dict, seed: int) -> Arrays:
    out = ns["features"](_random_batch(seed))
    return {"features": np.asarray(out.detach().cpu() if torch.is_tensor(out) else out,
                                   dtype=np.float32)}


def _features_verify(arrays: Arrays, seed: int) -> str:
    from ..models.factory import get_backbone

    model = get_backbone("efficientnet_lite0").eval()
    with torch.no_grad():
        want = model.forward_features(_random_batch(seed)).numpy()
    got = arrays["features"]
    if got.shape != want.shape:
        raise CheckFailed(f"features(images) of 3 images has shape {got.shape}; expected "
                          f"{want.shape}: the pooled features, before any head.")
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise CheckFailed("the features differ from the frozen Lite0's: use the ImageNet weights, "
                          "`model.eval()` and `model.forward_features(images)` under no_grad.")
    return f"pooled features {want.shape} match the frozen backbone"


def _accuracy_probe(ns: dict, seed: int) -> Arrays:
    images, _ = _test_batch(seed)
    predicted = ns["predict"](images)
    if torch.is_tensor(predicted):
        predicted = predicted.detach().cpu().numpy()
    return {"predicted": np.asarray(predicted).astype(np.int64).ravel()}


def _accuracy_verify(arrays: Arrays, seed: int) -> str:
    _, labels = _test_batch(seed)
    predicted = arrays["predicted"]
    if predicted.shape != labels.shape:
        raise CheckFailed(f"predict gave {predicted.shape[0]} labels for {labels.shape[0]} images.")
    accuracy = float((predicted == labels).mean())
    if accuracy < BAR:
        raise CheckFailed(f"accuracy {accuracy:.2f} on {len(labels)} held-out images; the bar is "
                          f"{BAR}. Are the training labels aligned with the features?")
    return f"accuracy {accuracy:.2f} on {len(labels)} held-out images (bar {BAR})"


register(Check("ex03.features", ("features",), _features_probe, _features_verify))
register(Check("ex03.accuracy", ("predict",), _accuracy_probe, _accuracy_verify))
