"""The offline data sets: real scikit-image photographs, seeded splits, no leaks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tlkit


def _rows(images: np.ndarray) -> set[bytes]:
    return {im.tobytes() for im in images}


def test_faces_split_halves_each_class_and_never_leaks():
    train = tlkit.load_dataset("faces", split="train", seed=3)
    test = tlkit.load_dataset("faces", split="test", seed=3)
    assert train.classes == test.classes == ["face", "non-face"]
    assert train.class_counts() == test.class_counts() == {"face": 50, "non-face": 50}
    assert not _rows(train.images) & _rows(test.images)
    assert len(_rows(train.images) | _rows(test.images)) == 200


def test_faces_labels_follow_lfw_subset():
    from skimage.data import lfw_subset

    faces = np.round(lfw_subset()[:100] * 255).astype(np.uint8)
    train = tlkit.load_dataset("faces", split="train")
    face_rows = _rows(faces)
    for image, label in zip(train.images, train.targets):
        assert (image.tobytes() in face_rows) == (label == 0)


def test_the_split_is_fixed_and_the_seed_only_picks_the_few_shot_images():
    # Runs over several seeds against one test set: no seed may put a test image in training.
    test = tlkit.load_dataset("faces", split="test")
    for seed in range(6):
        pool = tlkit.load_dataset("faces", split="train", seed=seed)
        assert pool.fingerprint() == tlkit.load_dataset("faces", split="train").fingerprint()
        few = tlkit.load_dataset("faces", split="train", k_per_class=5, seed=seed)
        assert not _rows(few.images) & _rows(test.images)
    draws = {tlkit.load_dataset("faces", k_per_class=5, seed=s).fingerprint() for s in range(6)}
    assert len(draws) == 6  # but each seed draws other training images


def test_few_shot_subsets_have_k_per_class_and_are_nested():
    small = tlkit.load_dataset("faces", k_per_class=2, seed=5)
    large = tlkit.load_dataset("faces", k_per_class=10, seed=5)
    assert small.class_counts() == {"face": 2, "non-face": 2}
    assert large.class_counts() == {"face": 10, "non-face": 10}
    assert _rows(small.images) <= _rows(large.images)
    with pytest.raises(ValueError, match="only 50 images"):
        tlkit.load_dataset("faces", k_per_class=51)
    with pytest.raises(ValueError, match="k_per_class must be >= 1"):
        tlkit.load_dataset("faces", k_per_class=0)


def test_textures_come_from_disjoint_regions():
    train = tlkit.load_dataset("textures", split="train")
    test = tlkit.load_dataset("textures", split="test")
    assert train.classes == ["brick", "grass", "gravel"]
    assert train.images.shape[1:] == (64, 64)
    assert min(train.class_counts().values()) >= 40 and min(test.class_counts().values()) >= 10
    assert not _rows(train.images) & _rows(test.images)
    # The test patches are exactly the right quarter of each photograph.
    import skimage.data
    brick = skimage.data.brick()
    right = brick[:, 384:]
    test_bricks = test.images[np.asarray(test.targets) == 0]
    assert sum(p.size for p in test_bricks) == right.size
    assert right[:64, :64].tobytes() in _rows(test_bricks)


def test_items_are_rgb_pil_images_or_transformed_tensors():
    data = tlkit.load_dataset("faces", split="test")
    image, label = data[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (25, 25)
    assert label in (0, 1)
    weights = tlkit.backbone_weights("efficientnet_lite0")
    tensor, _ = data.with_transform(weights.transforms(size=32))[0]
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (3, 32, 32)
    assert data.transform is None  # with_transform returned a copy


def test_unknown_names_and_splits_are_explained():
    with pytest.raises(ValueError, match="Available: faces, textures.*image_folder"):
        tlkit.load_dataset("mnist")
    with pytest.raises(ValueError, match="splits train, test"):
        tlkit.load_dataset("faces", split="val")
    assert tlkit.list_datasets()[:2] == ["faces", "textures"]
    assert {"hymenoptera", "flowers102", "eurosat", "pneumoniamnist", "cifar10"} <= \
        set(tlkit.list_datasets())
