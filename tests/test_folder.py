"""tlkit.image_folder: a learner's own images, one folder per class."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from tlkit.data.images import FileImages
from tlkit.data.folder import image_folder

rng = np.random.default_rng(0)


def _noise(size: tuple[int, int]) -> Image.Image:
    w, h = size
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _save(path: Path, im: Image.Image, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **kw)
    return path


def _jpeg_bytes(size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    _noise(size).save(buf, "JPEG")
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _palette_with_transparency() -> Image.Image:
    # Index 0 is transparent, index 1 is opaque green; one green pixel at (1, 1).
    p = Image.new("P", (12, 10), 0)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    return p


def _gradient16(size=(64, 8)) -> Image.Image:
    w, h = size
    a = np.tile(np.linspace(0, 65535, w).astype(np.uint16), (h, 1))
    im = Image.fromarray(a)
    assert im.mode == "I;16"
    return im


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three classes with every image mode, odd names and things to ignore."""
    root = tmp_path / "photos"
    _save(root / "cats" / "rgb.jpg", _noise((40, 30)))
    _save(root / "cats" / "grey.png", Image.new("L", (20, 10), 200))
    _save(root / "cats" / "palette.png", _palette_with_transparency(), transparency=0)
    _save(root / "cats" / "indoor" / "nested.jpg", _noise((16, 16)))  # nested: still a cat
    _save(root / "dogs" / "UPPER.JPG", _noise((33, 21)), "JPEG")
    _save(root / "dogs" / "mixed.Png", Image.new("RGBA", (14, 12), (255, 0, 0, 0)), "PNG")
    _save(root / "dogs" / "greyalpha.png", Image.new("LA", (9, 7), (0, 0)))
    _save(root / "dogs" / "cmyk.jpeg", Image.new("CMYK", (18, 6), (0, 255, 255, 0)))
    _save(root / "birds" / "deep.png", _gradient16())
    _save(root / "birds" / "int32.tif",
          Image.fromarray((np.arange(80).reshape(8, 10) * 1000).astype(np.int32)))
    # Ignored: hidden files and folders, other extensions, the macOS zip folder.
    _write(root / "cats" / ".DS_Store", b"\x00\x01junk")
    _save(root / "cats" / ".hidden.jpg", _noise((8, 8)))
    _save(root / "cats" / ".ipynb_checkpoints" / "rgb-checkpoint.jpg", _noise((8, 8)))
    _save(root / ".ipynb_checkpoints" / "x.jpg", _noise((8, 8)))
    _save(root / "__MACOSX" / "cats" / "y.jpg", _noise((8, 8)))
    _write(root / "dogs" / "notes.txt", b"good dogs")
    return root


def _by_name(ds: FileImages) -> dict[str, int]:
    return {p.name: i for i, p in enumerate(ds.paths)}


def test_classes_counts_and_ignored_files(photos: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about in a clean folder
        ds = image_folder(photos)
    assert isinstance(ds, FileImages)
    assert ds.classes == ["birds", "cats", "dogs"]
    assert ds.class_counts() == {"birds": 2, "cats": 4, "dogs": 4}
    names = _by_name(ds)
    assert set(names) == {"rgb.jpg", "grey.png", "palette.png", "nested.jpg", "UPPER.JPG",
                          "mixed.Png", "greyalpha.png", "cmyk.jpeg", "deep.png", "int32.tif"}
    assert ds.targets[names["nested.jpg"]] == ds.classes.index("cats")
    assert ds.targets[names["UPPER.JPG"]] == ds.classes.index("dogs")
    assert ds.name == "photos" and ds.root == photos


def test_every_image_is_8bit_rgb_with_its_size(photos: Path):
    ds = image_folder(photos)
    sizes = {"rgb.jpg": (40, 30), "grey.png": (20, 10), "palette.png": (12, 10),
             "nested.jpg": (16, 16), "UPPER.JPG": (33, 21), "mixed.Png": (14, 12),
             "greyalpha.png": (9, 7), "cmyk.jpeg": (18, 6), "deep.png": (64, 8),
             "int32.tif": (10, 8)}
    for name, i in _by_name(ds).items():
        image, label = ds[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB", name
        assert image.size == sizes[name], name
        assert np.asarray(image).dtype == np.uint8
        assert isinstance(label, int)


def test_modes_convert_to_the_right_colours(photos: Path):
    ds = image_folder(photos)
    px = {name: np.asarray(ds[i][0]).astype(int) for name, i in _by_name(ds).items()}
    assert (px["grey.png"] == 200).all()
    assert tuple(px["palette.png"][0, 0]) == (255, 255, 255)  # transparent -> white
    assert tuple(px["palette.png"][1, 1]) == (0, 255, 0)
    assert (px["mixed.Png"] == 255).all()  # fully transparent red RGBA -> white
    assert (px["greyalpha.png"] == 255).all()
    r, g, b = px["cmyk.jpeg"][3, 9]
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red
    deep = px["deep.png"][..., 0]  # 16-bit 0..65535 gradient: not clipped to white or black
    assert deep.min() < 10 and deep.max() > 245 and (np.diff(deep[0]) >= 0).all()
    wide = px["int32.tif"][..., 0]
    assert wide.min() < 10 and wide.max() > 245


def test_transform_is_applied(photos: Path):
    ds = image_folder(photos, transform=lambda im: ("seen", im.mode, im.size))
    names = _by_name(ds)
    assert ds[names["rgb.jpg"]][0] == ("seen", "RGB", (40, 30))
    assert ds.with_transform(None)[names["rgb.jpg"]][0].size == (40, 30)


@pytest.fixture
def with_bad_files(photos: Path) -> tuple[Path, list[Path]]:
    good = _jpeg_bytes()
    bad = [_write(photos / "cats" / "truncated.jpg", good[: len(good) // 2]),
           _write(photos / "dogs" / "corrupt.png", rng.bytes(500)),
           _write(photos / "birds" / "sub" / "empty.jpeg", b"")]
    return photos, bad


def test_bad_files_skipped_with_one_warning(with_bad_files):
    root, bad = with_bad_files
    with pytest.warns(UserWarning) as record:
        ds = image_folder(root)
    ours = [w for w in record if "unreadable" in str(w.message)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "Skipped 3 " in message
    for p in bad:
        assert str(p) in message
    assert "truncated" in message  # the reason for the truncated JPEG
    assert not set(bad) & set(ds.paths)
    assert len(ds) == 10


def test_truncation_caught_even_when_pil_is_told_to_accept_it(with_bad_files, monkeypatch):
    root, bad = with_bad_files
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(UserWarning, match="truncated.jpg"):
        ds = image_folder(root)
    assert bad[0] not in ds.paths
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the learner's setting is restored


def test_check_false_skips_decoding(with_bad_files):
    root, bad = with_bad_files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = image_folder(root, check=False)
    assert set(bad) <= set(ds.paths) and len(ds) == 13


def test_missing_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        image_folder("no_such_photos")
    message = str(e.value)
    assert str(tmp_path / "no_such_photos") in message  # absolute, not as typed
    assert "cats" in message and "dogs" in message  # shows the expected layout


def test_path_is_a_file(tmp_path: Path):
    f = _save(tmp_path / "one.jpg", _noise((8, 8)))
    with pytest.raises(NotADirectoryError, match="not a folder") as e:
        image_folder(f)
    assert str(f) in str(e.value)


def test_images_directly_in_the_folder(tmp_path: Path):
    _save(tmp_path / "a.jpg", _noise((8, 8)))
    _save(tmp_path / "b.PNG", _noise((8, 8)), "PNG")
    _save(tmp_path / ".ipynb_checkpoints" / "a.jpg", _noise((8, 8)))  # not a class
    with pytest.raises(ValueError, match="2 image") as e:
        image_folder(tmp_path)
    assert str(tmp_path) in str(e.value) and "cats" in str(e.value)


def test_empty_folder(tmp_path: Path):
    with pytest.raises(ValueError, match="No class sub-folders") as e:
        image_folder(tmp_path)
    assert str(tmp_path) in str(e.value) and "directly" not in str(e.value)


def test_empty_class_folder(photos: Path):
    (photos / "fish").mkdir()
    _write(photos / "fish" / "readme.txt", b"to do")
    with pytest.raises(ValueError, match="no image files") as e:
        image_folder(photos)
    assert str(photos / "fish") in str(e.value)


def test_class_with_only_unreadable_images(photos: Path):
    _write(photos / "fish" / "broken.jpg", b"not a jpeg")
    with pytest.warns(UserWarning, match="broken.jpg"), \
            pytest.raises(ValueError, match="unreadable") as e:
        image_folder(photos)
    assert str(photos / "fish") in str(e.value)


def test_no_images_anywhere(tmp_path: Path):
    _write(tmp_path / "cats" / "notes.txt", b"meow")
    _write(tmp_path / "dogs" / "photo.heic", b"\x00" * 10)
    with pytest.raises(ValueError, match="No images") as e:
        image_folder(tmp_path)
    assert str(tmp_path) in str(e.value) and ".jpg" in str(e.value) and ".png" in str(e.value)


def test_extensions_option(photos: Path):
    ds = image_folder(photos, extensions=("png", ".TIF"))  # without dot, any case
    assert {p.suffix.lower() for p in ds.paths} == {".png", ".tif"}
    assert ds.class_counts() == {"birds": 2, "cats": 2, "dogs": 2}
    # A single string is one extension; here "birds" has none, so that class is named.
    with pytest.raises(ValueError) as e:
        image_folder(photos, extensions=".JPG")
    assert str(photos / "birds") in str(e.value)


def test_symlinked_class_folder_and_link_loops(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere" / "horses"
    _save(elsewhere / "h1.jpg", _noise((8, 8)))
    _save(elsewhere / "deeper" / "h2.png", _noise((8, 8)))
    root = tmp_path / "photos"
    _save(root / "cats" / "c.jpg", _noise((8, 8)))
    try:
        os.symlink(elsewhere, root / "horses", target_is_directory=True)
        os.symlink(root / "cats", root / "cats" / "loop", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not permitted here")
    ds = image_folder(root)
    assert ds.class_counts() == {"cats": 1, "horses": 2}
    assert all(p.is_relative_to(root) for p in ds.paths)  # paths keep the link, for fingerprint


def test_relative_path_survives_chdir(photos: Path, monkeypatch):
    monkeypatch.chdir(photos.parent)
    ds = image_folder("photos/")
    monkeypatch.chdir(photos / "cats")
    assert ds.name == "photos" and ds.root.is_absolute()
    assert ds[0][0].mode == "RGB"


def test_fingerprint_changes_when_a_file_changes(photos: Path):
    before = image_folder(photos).fingerprint()
    assert image_folder(photos).fingerprint() == before
    _save(photos / "cats" / "rgb.jpg", _noise((41, 30)))
    assert image_folder(photos).fingerprint() != before


# --- folders that would give silently wrong labels ------------------------------------------

def test_a_folder_unpacked_one_level_too_high_names_the_right_one(tmp_path: Path):
    _save(tmp_path / "photos" / "cats" / "c.jpg", _noise((8, 8)))
    _save(tmp_path / "photos" / "dogs" / "d.jpg", _noise((8, 8)))
    with pytest.raises(ValueError, match="one sub-folder, 'photos'") as e:
        image_folder(tmp_path)
    assert f"image_folder('{tmp_path / 'photos'}')" in str(e.value)
    assert image_folder(tmp_path / "photos").classes == ["cats", "dogs"]


def test_split_folders_are_not_taken_for_classes(tmp_path: Path):
    for split in ("train", "val"):
        for c in ("ants", "bees"):
            _save(tmp_path / split / c / "x.jpg", _noise((8, 8)))
    with pytest.raises(ValueError, match="look like splits.*ants, bees") as e:
        image_folder(tmp_path)
    assert str(tmp_path / "train") in str(e.value)


def test_a_single_class_is_refused(tmp_path: Path):
    _save(tmp_path / "cats" / "c.jpg", _noise((8, 8)))
    with pytest.raises(ValueError, match="only one class folder, 'cats'.*at least two"):
        image_folder(tmp_path)


def test_nested_folders_inside_real_classes_still_belong_to_them(tmp_path: Path):
    for c in ("cats", "dogs"):
        for where in ("indoor", "outdoor"):
            _save(tmp_path / c / where / "x.jpg", _noise((8, 8)))
    assert image_folder(tmp_path).class_counts() == {"cats": 2, "dogs": 2}


def _link(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link, target_is_directory=target.is_dir())
    except OSError:
        pytest.skip("symlinks not permitted here")


@pytest.mark.parametrize("points_to", ["root", "parent of root", "sibling class"])
def test_a_link_back_up_never_adds_another_class_under_the_wrong_label(tmp_path: Path,
                                                                        points_to):
    root = tmp_path / "photos"
    _save(root / "cats" / "c.jpg", _noise((8, 8)))
    _save(root / "dogs" / "d1.jpg", _noise((8, 8)))
    _save(root / "dogs" / "d2.jpg", _noise((8, 8)))
    target = {"root": root, "parent of root": tmp_path, "sibling class": root / "dogs"}[points_to]
    _link(target, root / "cats" / "more")
    with pytest.warns(UserWarning, match="wrong label") as w:
        ds = image_folder(root)
    assert str(root / "cats" / "more") in str(w[0].message)
    assert ds.class_counts() == {"cats": 1, "dogs": 2}
    assert all(ds.classes[t] == p.relative_to(root).parts[0] for p, t in zip(ds.paths, ds.targets))


def test_the_same_file_in_two_classes_is_an_error_naming_both(tmp_path: Path):
    _save(tmp_path / "cats" / "c.jpg", _noise((8, 8)))
    _save(tmp_path / "dogs" / "d.jpg", _noise((8, 8)))
    _link(tmp_path / "dogs" / "d.jpg", tmp_path / "cats" / "d.jpg")
    with pytest.raises(ValueError, match="two classes") as e:
        image_folder(tmp_path)
    assert str(tmp_path / "cats" / "d.jpg") in str(e.value)


def test_a_file_name_that_is_not_utf8_is_fingerprinted_and_cached(tmp_path: Path):
    import tlkit

    _save(tmp_path / "cats" / "c.jpg", _noise((8, 8)))
    latin1 = os.fsdecode(b"caf\xe9.jpg")  # the name an old Windows zip gives
    try:
        _save(tmp_path / "dogs" / latin1, _noise((8, 8)), "JPEG")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses bytes that are not UTF-8")
    model = tlkit.small_cnn(num_classes=2)
    ds = image_folder(tmp_path, transform=model.weights.transforms())
    assert len(ds.fingerprint()) == 16
    first = tlkit.extract_features(model, ds, cache_dir=tmp_path / "cache", progress=False)
    again = tlkit.extract_features(model, ds, cache_dir=tmp_path / "cache", progress=False)
    assert not first.from_cache and again.from_cache and (first.x == again.x).all()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"path": 3}, TypeError, "folder path"),
    ({"transform": "resize"}, TypeError, "transform must be callable"),
    ({"extensions": ()}, ValueError, "extensions"),
])
def test_bad_arguments_are_named(photos: Path, kwargs, error, words):
    kwargs = {"path": photos, **kwargs}
    with pytest.raises(error, match=words):
        image_folder(**kwargs)


def test_jfif_counts_as_jpeg_and_other_photo_formats_are_named_not_dropped(tmp_path: Path):
    _save(tmp_path / "cats" / "c.jpg", _noise((8, 8)))
    _save(tmp_path / "cats" / "saved_from_web.jfif", _noise((8, 8)), "JPEG")
    _save(tmp_path / "dogs" / "d.jpg", _noise((8, 8)))
    _write(tmp_path / "dogs" / "IMG_0001.HEIC", b"\x00" * 32)
    _write(tmp_path / "dogs" / "notes.txt", b"not a photo: no warning for this one")
    with pytest.warns(UserWarning, match=r"Left out 1 photo file.*\.heic.*convert them") as w:
        ds = image_folder(tmp_path)
    assert len(w) == 1 and "notes.txt" not in str(w[0].message)
    assert ds.class_counts() == {"cats": 2, "dogs": 1}
