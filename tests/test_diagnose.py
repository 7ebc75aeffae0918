"""Confusion matrix, feature map, predictions, augmented draws, SE error bars (teach/)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import tlkit  # noqa: E402


class Fixed(nn.Module):
    """Class 1 when the mean of an input is above 0, else class 0: counts known in advance."""

    def forward(self, x):
        positive = (x.flatten(1).mean(1) > 0).float()
        return torch.stack([1 - positive, positive], 1)


def _data():
    x = torch.cat([torch.full((3, 4), 1.0), torch.full((5, 4), -1.0)])
    y = torch.tensor([1, 1, 0, 0, 0, 0, 0, 1])  # 2 right of the first 3, 4 right of the last 5
    return x, y


def test_predictions_and_the_confusion_counts_are_what_the_model_did():
    x, y = _data()
    true, predicted = tlkit.predictions(Fixed(), (x, y))
    assert true.tolist() == y.tolist()
    assert predicted.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    ax = tlkit.plot_confusion(Fixed(), (x, y), classes=["no", "yes"])
    counts = [t.get_text() for t in ax.texts]
    assert counts == ["4", "1", "1", "2"]  # rows true (no, yes), columns predicted
    assert "75.0%" in ax.get_title() and "8 images" in ax.get_title()
    plt.close("all")


def test_confusion_takes_a_scikit_learn_classifier_on_features_and_a_data_set_with_names():
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    clf = LogisticRegression().fit(x.numpy(), y.numpy())
    ax = tlkit.plot_confusion(clf, (x, y))
    assert sum(int(t.get_text()) for t in ax.texts) == 8
    images = tlkit.ArrayImages(np.zeros((4, 8, 8), np.uint8), targets=[0, 1, 0, 1],
                               classes=["cat", "dog"], transform=lambda im: torch.zeros(3, 8, 8))
    ax = tlkit.plot_confusion(Fixed(), images)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    with pytest.raises(TypeError, match="scikit-learn classifier predicts from features"):
        tlkit.plot_confusion(clf, images)
    with pytest.raises(TypeError, match="network .* or a fitted scikit-learn"):
        tlkit.plot_confusion("model", (x, y))
    with pytest.raises(ValueError, match="one name per class"):
        tlkit.plot_confusion(Fixed(), (x, y), classes=["only one"])
    plt.close("all")


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_feature_map_separates_two_clouds(method):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 10)), rng.normal(6, 1, (20, 10))])
    y = np.repeat([0, 1], 20)
    ax = tlkit.plot_feature_map((x, y), method=method, classes=["a", "b"], title="t")
    a, b = (c.get_offsets() for c in ax.collections)
    # The two clouds stay apart: every point is nearer its own cloud's centre.
    ca, cb = np.mean(a, 0), np.mean(b, 0)
    assert all(np.linalg.norm(p - ca) < np.linalg.norm(p - cb) for p in a)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    if method == "pca":
        assert "of the variance" in ax.get_xlabel()
    with pytest.raises(ValueError, match="method must be 'pca' or 'tsne'"):
        tlkit.plot_feature_map((x, y), method="umap")
    with pytest.raises(TypeError, match="takes features"):
        tlkit.plot_feature_map(x)
    plt.close("all")


def test_show_augmented_draws_the_transform_and_undoes_normalize():
    from torchvision import transforms as T

    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :8] = 255  # left half white: a flip moves it
    flip = T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    data = tlkit.ArrayImages(image[None], targets=[0], classes=["x"], transform=flip)
    axes = tlkit.show_augmented(data, n=2)
    assert len(axes) == 3
    drawn = axes[1].get_images()[0].get_array()
    assert drawn[:, :8].max() == 0 and drawn[:, 8:].min() == 1  # flipped, back in [0, 1]
    with pytest.raises(ValueError, match="no transform"):
        tlkit.show_augmented(data.with_transform(None))
    with pytest.raises(TypeError, match="tlkit data set"):
        tlkit.show_augmented([1, 2])
    plt.close("all")


def test_data_efficiency_error_bars_are_std_or_standard_error():
    results = {"m": {2: [0.5, 0.7, 0.6, 0.8]}}
    std = tlkit.plot_data_efficiency(results)
    se = tlkit.plot_data_efficiency(results, error="se")

    def bar(ax):  # the length of the one error bar drawn
        segments = ax.collections[0].get_segments()[0]
        return abs(segments[1][1] - segments[0][1]) / 2

    assert bar(std) == pytest.approx(np.std([0.5, 0.7, 0.6, 0.8]))
    assert bar(se) == pytest.approx(np.std([0.5, 0.7, 0.6, 0.8]) / 2)
    assert "SE" in se.get_ylabel()
    with pytest.raises(ValueError, match="error must be"):
        tlkit.plot_data_efficiency(results, error="sem")
    plt.close("all")


def test_feature_map_and_confusion_name_bad_inputs():
    x, y = np.random.default_rng(0).normal(size=(10, 4)), np.arange(10) % 2
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        tlkit.plot_feature_map((bad, y))
    with pytest.raises(ValueError, match="D >= 2"):
        tlkit.plot_feature_map((x[:, :1], y))
    with pytest.raises(ValueError, match="one label each"):
        tlkit.plot_feature_map((x, y[:5]))
    with pytest.raises(ValueError, match="class indices"):
        tlkit.plot_feature_map((x, y - 1))
    with pytest.raises(ValueError, match="empty"):
        tlkit.plot_confusion(Fixed(), (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)))
    plt.close("all")
