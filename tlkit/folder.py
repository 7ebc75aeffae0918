"""A learner's own images, one folder per class (the torchvision ``ImageFolder`` layout)."""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageFile

from ._dataset import FileImages, to_rgb

__all__ = ["image_folder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Never a class: macOS puts "._name" copies here when a student zips a folder.
_NOT_CLASSES = {"__MACOSX"}


def _layout(root: Path) -> str:
    return (f"image_folder expects one sub-folder per class, e.g.\n"
            f"  {root / 'cats' / '1.jpg'}\n  {root / 'dogs' / '2.jpg'}")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _files_under(folder: Path) -> list[Path]:
    """All non-hidden files below ``folder``, recursively, in a stable order."""
    files: list[Path] = []
    seen = {os.path.realpath(folder)}  # followlinks=True could loop on a link to a parent
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, d))
            if not _hidden(d) and real not in seen:
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


def image_folder(path: str | Path, *, transform: Callable | None = None,
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
    root = Path(path).expanduser().absolute()  # absolute: a later os.chdir can't break it
    if not root.exists():
        raise FileNotFoundError(f"No folder at {root}.\n{_layout(root)}")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file, not a folder.\n{_layout(root)}")
    if isinstance(extensions, str):  # ".jpg" alone would otherwise be read as 4 extensions
        extensions = (extensions,)
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    accepted = ", ".join(sorted(exts))

    def is_image(p: Path) -> bool:
        return p.suffix.lower() in exts  # ".JPG" from cameras counts as ".jpg"

    class_dirs = sorted(d for d in root.iterdir()
                        if d.is_dir() and not _hidden(d.name) and d.name not in _NOT_CLASSES)
    if not class_dirs:
        loose = sum(1 for f in root.iterdir() if f.is_file() and is_image(f))
        found = (f"It has {loose} image(s) directly inside but no class sub-folders: move "
                 f"them into one folder per class.\n" if loose else "")
        raise ValueError(f"No class sub-folders in {root}.\n{found}{_layout(root)}")

    per_class = {d: [f for f in _files_under(d) if is_image(f)] for d in class_dirs}
    if not any(per_class.values()):
        raise ValueError(f"No images in {root} or its sub-folders (accepted extensions: "
                         f"{accepted}, in any case).\n{_layout(root)}")

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
