"""Feature extraction runs the backbone once; the cache answers the second call."""
from __future__ import annotations

import pytest
import torch

import tlkit


@pytest.fixture(scope="module")
def lite0():
    return tlkit.get_backbone("efficientnet_lite0", weights="imagenet")


@pytest.fixture
def faces(lite0):
    return tlkit.load_dataset("faces", split="train", k_per_class=4,
                              transform=lite0.weights.transforms(size=64))


def test_features_are_the_backbones_output(lite0, faces, tmp_path):
    out = tlkit.extract_features(lite0, faces, cache_dir=tmp_path, progress=False)
    assert out.x.shape == (8, lite0.num_features) and out.y.tolist() == faces.targets
    assert not out.from_cache
    batch = torch.stack([faces[i][0] for i in range(len(faces))])
    with torch.no_grad():
        assert torch.allclose(out.x, lite0.eval().forward_features(batch), atol=1e-5)


def test_second_call_reads_the_cache_without_running_the_model(lite0, faces, tmp_path,
                                                               monkeypatch):
    first = tlkit.extract_features(lite0, faces, cache_dir=tmp_path, progress=False)

    def refuse(_):
        raise AssertionError("the backbone ran although the features were cached")

    monkeypatch.setattr(lite0, "forward_features", refuse)
    x, y = second = tlkit.extract_features(lite0, faces, cache_dir=tmp_path, progress=False)
    assert second.from_cache and second.path == first.path and second.path.is_file()
    assert torch.equal(x, first.x) and torch.equal(y, first.y)


def test_the_key_changes_with_transform_data_and_weights(lite0, faces, tmp_path):
    base = tlkit.extract_features(lite0, faces, cache_dir=tmp_path, progress=False)
    other_size = faces.with_transform(lite0.weights.transforms(size=48))
    assert not tlkit.extract_features(lite0, other_size, cache_dir=tmp_path,
                                      progress=False).from_cache
    other_seed = tlkit.load_dataset("faces", k_per_class=4, seed=9, transform=faces.transform)
    assert not tlkit.extract_features(lite0, other_seed, cache_dir=tmp_path,
                                      progress=False).from_cache
    tuned = tlkit.get_backbone("efficientnet_lite0", weights="imagenet")
    with torch.no_grad():
        next(tuned.blocks[4].parameters()).mul_(1.01)  # a fine-tuned backbone is another one
    changed = tlkit.extract_features(tuned, faces, cache_dir=tmp_path, progress=False)
    assert not changed.from_cache and changed.path != base.path


def test_cache_can_be_turned_off_and_lives_under_tlkit_cache(lite0, faces, tmp_path, monkeypatch):
    out = tlkit.extract_features(lite0, faces, cache=False, progress=False)
    assert out.path is None and not out.from_cache
    monkeypatch.setenv("TLKIT_CACHE", str(tmp_path))
    saved = tlkit.extract_features(lite0, faces, progress=False)
    assert saved.path.parent == tmp_path / "features"


def test_a_data_set_without_transform_is_refused(lite0):
    with pytest.raises(ValueError, match="transform=model.weights.transforms"):
        tlkit.extract_features(lite0, tlkit.load_dataset("faces"), progress=False)


def test_imagenet_features_separate_faces_from_non_faces(lite0, tmp_path):
    """The point of lesson 04: a linear head on frozen ImageNet features already works."""
    transform = lite0.weights.transforms(size=64)
    train = tlkit.load_dataset("faces", split="train", k_per_class=20, transform=transform)
    test = tlkit.load_dataset("faces", split="test", transform=transform)
    xtr = tlkit.extract_features(lite0, train, cache_dir=tmp_path, progress=False)
    xte = tlkit.extract_features(lite0, test, cache_dir=tmp_path, progress=False)
    head = torch.nn.Linear(lite0.num_features, 2)
    tlkit.fit(head, (xtr.x, xtr.y), epochs=30, lr=1e-3, optimizer="adam", batch_size=8,
              progress=False, device="cpu")
    assert tlkit.evaluate(head, (xte.x, xte.y), device="cpu")["acc"] >= 0.85
