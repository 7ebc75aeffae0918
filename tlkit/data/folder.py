"""A learner's own images, one folder per class (the torchvision ``ImageFolder`` layout).

What goes wrong with real folders, and what happens here:

* unpacked one level too high (``root/photos/{cats,dogs}``, or ``root/{train,val}/{cats,dogs}``):
  an error that names the folder to pass instead, never one class called "photos";
* a link inside a class folder that points back up (to the root or an ancestor): skipped with a
  warning, so a sibling class's images never come in under the wrong label;
* the same file reached from two classes (a link across classes): an error naming both;
* unreadable, truncated or non-image files: skipped with one warning that names them.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageFile

from ..core.checks import describe, flag
from .images import FileImages, _transform, to_rgb

__all__ = ["image_folder", "IMAGE_EXTENSIONS"]

# .jfif and .jpe are JPEG under other names (Windows saves web images as .jfif).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff",
                    ".webp")
# Photo formats a learner may have that are left out: named in a warning, never dropped silently.
_OTHER_PHOTOS = {".heic", ".heif", ".avif", ".jxl", ".jp2", ".dng", ".cr2", ".nef", ".arw",
                 ".raw", ".psd", ".svg", ".ico", ".pjpeg", ".jpg_large"}
# Never a class: macOS puts "._name" copies here when a student zips a folder.
_NOT_CLASSES = {"__MACOSX"}
# Folder names that mean "a split", not "a class": root/train/cats is one level too high.
_SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "dev"}


def _layout(root: Path) -> str:
    return (f"image_folder expects one sub-folder per class, e.g.\n"
            f"  {root / 'cats' / '1.jpg'}\n  {root / 'dogs' / '2.jpg'}")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir()
                  if d.is_dir() and not _hidden(d.name) and d.name not in _NOT_CLASSES)


def _files_under(folder: Path, root: Path, skipped: list[str]) -> list[Path]:
    """All non-hidden files below ``folder``, recursively, in a stable order.

    A linked folder is followed unless it leads back up to ``root`` or to a folder above this
    one: that link would bring in every sibling class (and loop forever); it goes to ``skipped``.
    """
    files: list[Path] = []
    real_root = os.path.realpath(root)
    above = {os.path.realpath(p) for p in (folder, *folder.parents)}
    seen = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            path = os.path.join(dirpath, d)
            real = os.path.realpath(path)
            if _hidden(d) or real in seen:
                continue
            if real in above or (real.startswith(real_root + os.sep) and
                                 not real.startswith(os.path.realpath(folder) + os.sep)):
                skipped.append(f"{path} -> {real}")
                continue
            seen.add(real)
            keep.append(d)
        dirnames[:] = keep  # os.walk only descends into what is left here
        files += [Path(dirpath, f) for f in sorted(filenames) if not _hidden(f)]
    return files


def _check_one(path: Path) -> str | None:
    """None if the file decodes completely, else the reason it doesn't."""
    try:
        with Image.open(path) as im:
            im.load()  # a full decode: verify() only checks headers and misses truncation
            to_rgb(im)  # exactly what the data set will do with it later
    except Exception as e:  # any failure means "skip this file", whatever PIL raised
        return f"{type(e).__name__}: {e}"
    return None


def _find_bad(paths: list[Path]) -> dict[Path, str]:
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # otherwise PIL pads truncated files with grey
    try:
        # PIL releases the GIL while decoding, so a few threads help on big folders.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            reasons = list(pool.map(_check_one, paths))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return {p: r for p, r in zip(paths, reasons) if r is not None}


def _too_high(root: Path, class_dirs: list[Path], per_class: dict[Path, list[Path]]) -> str | None:
    """Why ``root`` looks one level above the class folders, or None."""
    if len(class_dirs) == 1:
        only = class_dirs[0]
        inner = [d.name for d in _subfolders(only)]
        direct = [f for f in per_class[only] if f.parent == only]
        if len(inner) >= 2 and not direct:
            return (f"{root} has one sub-folder, {only.name!r}, and the classes seem to be inside "
                    f"it ({', '.join(inner[:5])}): pass image_folder({str(only)!r})")
        return (f"{root} has only one class folder, {only.name!r}: a classifier needs at least "
                f"two (one sub-folder per class)")
    splits = [d for d in class_dirs if d.name.lower() in _SPLIT_NAMES]
    if splits and all(not any(f.parent == d for f in per_class[d]) and _subfolders(d)
                      for d in splits):
        inner = sorted({s.name for d in splits for s in _subfolders(d)})
        return (f"the sub-folders of {root} ({', '.join(d.name for d in class_dirs)}) look like "
                f"splits, each holding class folders ({', '.join(inner[:5])}): pass one split, "
                f"e.g. image_folder({str(splits[0])!r})")
    return None


def image_folder(path: str | os.PathLike, *, transform: Callable | None = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 check: bool = True) -> FileImages:
    """Your own images as a data set, from ``path/<class_name>/<image files>``.

    Classes are the sub-folder names, sorted; a label is the index of its class in
    ``ds.classes``. Images in nested folders (``path/cats/indoor/x.jpg``) belong to the
    class folder they are in. Hidden files and folders and files with other extensions
    are ignored. With ``check=True`` every image is decoded once, and unreadable files are
    skipped with one warning that names them.

    Example::

        ds = tlkit.image_folder("my_photos/", transform=weights.transforms())
        image, label = ds[0]
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder path (str or pathlib.Path), got {describe(path)}")
    transform = _transform(transform)
    check = flag("check", check)
    root = Path(path).expanduser().absolute()  # absolute: a later os.chdir can't break it
    if not root.exists():
        raise FileNotFoundError(f"No folder at {root}.\n{_layout(root)}")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file, not a folder.\n{_layout(root)}")
    if isinstance(extensions, str):  # ".jpg" alone would otherwise be read as 4 extensions
        extensions = (extensions,)
    if not extensions or not all(isinstance(e, str) and e.strip(".") for e in extensions):
        raise ValueError(f"extensions must be file endings such as ('.jpg', '.png'), got "
                         f"{extensions!r}")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    accepted = ", ".join(sorted(exts))

    def is_image(p: Path) -> bool:
        return p.suffix.lower() in exts  # ".JPG" from cameras counts as ".jpg"

    class_dirs = _subfolders(root)
    if not class_dirs:
        loose = sum(1 for f in root.iterdir() if f.is_file() and is_image(f))
        found = (f"It has {loose} image(s) directly inside but no class sub-folders: move "
                 f"them into one folder per class.\n" if loose else "")
        raise ValueError(f"No class sub-folders in {root}.\n{found}{_layout(root)}")

    links: list[str] = []
    found = {d: _files_under(d, root, links) for d in class_dirs}
    per_class = {d: [f for f in files if is_image(f)] for d, files in found.items()}
    left_out = sorted(f for files in found.values() for f in files
                      if not is_image(f) and f.suffix.lower() in _OTHER_PHOTOS)
    if left_out:
        endings = sorted({f.suffix.lower() for f in left_out})
        warnings.warn(f"Left out {len(left_out)} photo file(s) with the ending(s) "
                      f"{', '.join(endings)}, e.g. {left_out[0]}: convert them to .jpg or .png "
                      f"(or pass extensions= with their ending if Pillow can read them).",
                      UserWarning, stacklevel=2)
    if not any(per_class.values()):
        raise ValueError(f"No images in {root} or its sub-folders (accepted extensions: "
                         f"{accepted}, in any case).\n{_layout(root)}")
    wrong_level = _too_high(root, class_dirs, per_class)
    if wrong_level:
        raise ValueError(f"{wrong_level}.\n{_layout(root)}")
    if links:
        warnings.warn(f"Skipped {len(links)} linked folder(s) that lead back up to {root} or a "
                      f"folder above the class; following them would add other classes' images "
                      f"under the wrong label:\n" + "\n".join(f"  {l}" for l in links),
                      UserWarning, stacklevel=2)
    per_class = _one_label_per_file(per_class)

    bad: dict[Path, str] = {}
    if check:
        bad = _find_bad([f for files in per_class.values() for f in files])
        if bad:
            lines = "\n".join(f"  {p}: {reason}" for p, reason in bad.items())
            warnings.warn(f"Skipped {len(bad)} unreadable image file(s) in {root}:\n{lines}",
                          UserWarning, stacklevel=2)

    paths: list[Path] = []
    targets: list[int] = []
    for label, (d, files) in enumerate(per_class.items()):
        good = [f for f in files if f not in bad]
        if not good:
            why = (f"all {len(files)} image file(s) in it are unreadable (see the warning)"
                   if files else f"it has no image files (accepted extensions: {accepted})")
            raise ValueError(f"Class folder {d} has no usable images: {why}. "
                             f"Add images or remove the folder.")
        paths += good
        targets += [label] * len(good)
    return FileImages(paths, targets=targets, classes=[d.name for d in class_dirs],
                      transform=transform, name=root.name, root=root)


def _one_label_per_file(per_class: dict[Path, list[Path]]) -> dict[Path, list[Path]]:
    """Drop repeats of one file inside a class; refuse a file that two classes both reach."""
    owner: dict[str, Path] = {}
    clashes: list[str] = []
    kept: dict[Path, list[Path]] = {}
    for d, files in per_class.items():
        kept[d] = []
        for f in files:
            real = os.path.realpath(f)
            if real not in owner:
                owner[real] = f
                kept[d].append(f)
            elif not owner[real].is_relative_to(d):
                clashes.append(f"  {owner[real]} and {f}")
    if clashes:
        raise ValueError(f"{len(clashes)} file(s) are in two classes at once (through a link), so "
                         f"their label is ambiguous:\n" + "\n".join(clashes[:10]) +
                         "\nKeep each image in exactly one class folder.")
    return kept
