"""ex03_feature_extraction: frozen Lite0 features, and a head trained on cached training features.

The accuracy is measured on held-out faces drawn here. Their labels never enter the sandbox,
and inside it the test split of the faces data is blanked (``masks``): a student's code cannot
look the images up, it has to classify them.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from tlkit.teach import exercises as ex
from tlkit.teach.selfcheck import ACCURACY_BAR

from .checks import Arrays, Check, CheckFailed, Context, register


def _features_inputs(ctx: Context) -> Arrays:
    return {"images": ex.random_images(ctx.seed)}


def _features_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    import torch
    from tlkit.models.factory import get_backbone

    model = get_backbone("efficientnet_lite0").eval()
    with torch.no_grad():
        want = model.forward_features(torch.from_numpy(inputs["images"])).numpy()
    got = outputs["features"]
    if got.shape != want.shape:
        raise CheckFailed(f"features(images) of {len(want)} images has shape {got.shape}; expected "
                          f"{want.shape}: the pooled features, before any head.")
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise CheckFailed("the features differ from the frozen Lite0's: use the ImageNet weights, "
                          "`model.eval()` and `model.forward_features(images)` under no_grad.")
    return f"pooled features {want.shape} match the frozen backbone"


@lru_cache(maxsize=1)
def _test_split():
    import torch
    from tlkit.data.catalog import load_dataset
    from tlkit.models.factory import backbone_weights

    data = load_dataset("faces", split="test",
                        transform=backbone_weights("efficientnet_lite0").transforms(size=ex.FACES_SIZE))
    return torch.stack([data[i][0] for i in range(len(data))]).numpy(), \
        np.array([data[i][1] for i in range(len(data))])


def _accuracy_inputs(ctx: Context) -> Arrays:
    images, labels = _test_split()
    return {"images": images[ex.faces_test_draw(ctx.seed, labels)]}  # images only, no labels


def _accuracy_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    _, labels = _test_split()
    labels = labels[ex.faces_test_draw(ctx.seed, labels)]
    predicted = outputs["predicted"]
    if predicted.shape != labels.shape:
        raise CheckFailed(f"predict gave {predicted.shape[0]} labels for {labels.shape[0]} images.")
    accuracy = float((predicted == labels).mean())
    if accuracy < ACCURACY_BAR:
        raise CheckFailed(f"accuracy {accuracy:.2f} on {len(labels)} held-out images; the bar is "
                          f"{ACCURACY_BAR}. Are the training labels aligned with the features?")
    return f"accuracy {accuracy:.2f} on {len(labels)} held-out images (bar {ACCURACY_BAR})"


def test_indices() -> np.ndarray:
    """Indices of the faces test split in lfw_subset's 200 images (as tlkit.data.catalog cuts it)."""
    targets = np.repeat([0, 1], [100, 100])
    rng = np.random.default_rng(0)
    chosen = []
    for c in (0, 1):
        members = rng.permutation(np.flatnonzero(targets == c))
        chosen.extend(members[len(members) // 2:])
    return np.sort(np.asarray(chosen))


def masks() -> dict[str, np.ndarray]:
    """Every copy of lfw_subset.npy the sandbox could read -> the same file, test images blanked."""
    found = {}
    for entry in sys.path:
        path = Path(entry or ".", "skimage", "data", "lfw_subset.npy")
        if path.is_file():
            faces = np.load(path)
            faces[test_indices()] = 0.5
            found[str(path.resolve())] = faces
    return found


register(Check("ex03.features", ("features",), "features", _features_inputs, _features_verify))
register(Check("ex03.accuracy", ("predict",), "predict", _accuracy_inputs, _accuracy_verify,
               masks=masks))
