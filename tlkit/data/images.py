"""The one data-set shape every tlkit loader returns.

A data set is a list of images with integer labels and class names. Items come out as
``(transform(PIL RGB image), label)``, so the same ``weights.transforms()`` pipeline works for
the offline sets, a learner's own folder and the downloaded ones. ``fingerprint()`` identifies
the content cheaply; the feature cache keys on it.
"""
from __future__ import annotations

import hashlib
import inspect
import operator
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = ["ImageDataset", "ArrayImages", "FileImages"]


class ImageDataset(torch.utils.data.Dataset):
    """Base class: subclasses implement ``load_image(i)`` and ``_content_id()``."""

    def __init__(self, *, targets: Sequence[int], classes: Sequence[str],
                 transform: Callable | None = None, name: str = "images") -> None:
        classes = _classes(classes)
        self.targets = _labels(targets, classes)
        self.classes = classes
        self.transform = _transform(transform)
        self.name = name

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        image = self.load_image(i)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[i]

    def load_image(self, i: int) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    def _content_id(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short hash of the images and labels (not of the transform)."""
        h = hashlib.sha256(self._content_id())
        h.update(np.asarray(self.targets, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def with_transform(self, transform: Callable | None) -> "ImageDataset":
        """The same images with another transform (the original is left unchanged)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.transform = _transform(transform)
        return clone

    def subset(self, indices: Sequence[int]) -> "ImageDataset":
        """The images at ``indices`` (same classes and transform)."""
        if isinstance(indices, slice):
            indices = range(len(self))[indices]
        indices = list(np.asarray(indices).reshape(-1)) if isinstance(indices, np.ndarray) \
            else list(indices)
        for i in indices:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"subset() takes whole-number indices, got {i!r}; to keep images "
                                f"by a condition use np.flatnonzero(mask)")
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of range for {self.name} ({len(self)} images)")
        indices = [int(i) % len(self) for i in indices]
        clone = self._take(indices)
        clone.targets = [self.targets[i] for i in indices]
        return clone

    def _take(self, indices: list[int]) -> "ImageDataset":  # pragma: no cover - abstract
        raise NotImplementedError

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.targets, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.class_counts().items())
        return f"{type(self).__name__}({self.name!r}, {len(self)} images; {counts})"


class ArrayImages(ImageDataset):
    """Images held in memory as a uint8 array (N, H, W) or (N, H, W, 3)."""

    def __init__(self, images: np.ndarray, *, targets: Sequence[int], classes: Sequence[str],
                 transform: Callable | None = None, name: str = "images") -> None:
        if not isinstance(images, np.ndarray):
            raise TypeError(f"images must be a NumPy array, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8 (0-255), got {images.dtype}; for floats in "
                            f"[0, 1] pass np.round(images * 255).astype(np.uint8)")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (3, 4)):
            raise ValueError(f"images must have shape (N, H, W) for grey or (N, H, W, 3) for "
                             f"colour, got {images.shape}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        super().__init__(targets=targets, classes=classes, transform=transform, name=name)
        self.images = images

    def load_image(self, i: int) -> Image.Image:
        return to_rgb(Image.fromarray(self.images[i]))  # RGBA on white, as for files

    def _content_id(self) -> bytes:
        return hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).digest()

    def _take(self, indices: list[int]) -> "ArrayImages":
        clone = self.with_transform(self.transform)
        clone.images = self.images[indices]
        return clone


class FileImages(ImageDataset):
    """Images read from files on demand, converted to RGB."""

    def __init__(self, paths: Sequence[str | Path], *, targets: Sequence[int],
                 classes: Sequence[str], transform: Callable | None = None,
                 name: str = "images", root: str | Path | None = None) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} files but {len(targets)} labels")
        super().__init__(targets=targets, classes=classes, transform=transform, name=name)
        self.paths = [Path(p) for p in paths]
        self.root = Path(root) if root is not None else None

    def load_image(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as im:
            # Phones store portrait photos sideways plus an EXIF flag: honour the flag.
            return to_rgb(ImageOps.exif_transpose(im))

    def _take(self, indices: list[int]) -> "FileImages":
        clone = self.with_transform(self.transform)
        clone.paths = [self.paths[i] for i in indices]
        return clone

    def _content_id(self) -> bytes:
        # Relative path, size and modification time: cheap, and changes when a file does.
        h = hashlib.sha256()
        for p in self.paths:
            st = p.stat()
            rel = p.relative_to(self.root) if self.root else p
            # os.fsencode: a file name that is not valid UTF-8 (an old camera, a zip from
            # Windows) gives back its original bytes instead of failing to encode.
            h.update(os.fsencode(rel) + f"|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.digest()


def _classes(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str):  # ("cats") without a comma is the string "cats"
        raise TypeError(f"classes must be a list of names, e.g. ['cats', 'dogs'], got the "
                        f"string {classes!r}")
    names = [str(c) for c in classes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"class names must be different, but {repeated} appear more than once")
    return names


def _labels(targets: Sequence[int], classes: Sequence[str]) -> list[int]:
    if isinstance(targets, np.ndarray) and targets.ndim > 1:
        raise ValueError(f"labels must be one class index per image, shape (N,), got "
                         f"{targets.shape}: pass labels.reshape(-1)")
    labels = []
    for t in targets:
        try:
            if isinstance(t, (bool, np.bool_)):
                raise TypeError
            labels.append(operator.index(t))  # int, NumPy or torch integers; not 1.5 or "cat"
        except TypeError:
            raise TypeError(f"labels must be whole numbers (class indices), got {t!r}; map "
                            f"names to indices with classes.index(name)") from None
    if labels and not 0 <= min(labels) <= max(labels) < len(classes):
        raise ValueError(f"labels must be class indices 0 to {len(classes) - 1} for the "
                         f"{len(classes)} classes {list(classes)[:5]}, got labels from "
                         f"{min(labels)} to {max(labels)}")
    return labels


def _transform(transform: Callable | None) -> Callable | None:
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable (e.g. model.weights.transforms()) or None, "
                        f"got {type(transform).__name__}")
    if inspect.ismethod(transform) and transform.__name__ == "transforms":
        # weights.transforms is the method that builds the pipeline, not the pipeline itself.
        raise TypeError("transform=weights.transforms is the method, not the preprocessing: "
                        "call it, transform=model.weights.transforms()")
    return transform


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode (L, P, PA, RGBA, CMYK, I;16, I, F, LA) as an 8-bit RGB image."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if im.mode == "F" and 0.0 <= lo and hi <= 1.0:
            a = a * 255.0  # float images in [0, 1]
        elif 0.0 <= lo and hi <= 65535.0:
            a = a / 257.0  # 16-bit: keep absolute brightness, comparable between images
        elif hi > lo:
            a = (a - lo) / (hi - lo) * 255.0  # anything else: stretch rather than clip
        else:
            a = np.zeros_like(a)
        return Image.fromarray(a.round().clip(0, 255).astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        # Composite on white: transparent pixels are usually background.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
