"""The downloadable data sets: a registry of what to fetch, and ``load_online`` to get one.

Files come through :func:`tlkit.data.download.download` (resumable and verified; torchvision's own
downloader restarts from zero after every dropped connection), then torchvision parses them
where it can. Everything lands under ``$TLKIT_DATA`` (default ``~/.cache/tlkit/data``).

    >>> from tlkit.data.online import load_online, list_online
    >>> list_online()
    ['cifar10', 'eurosat', 'flowers102', 'hymenoptera', 'pneumoniamnist', 'sst2']
    >>> train = load_online("hymenoptera", split="train")        # doctest: +SKIP
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.checks import describe, writable_folder
from .images import ArrayImages, FileImages, ImageDataset
from .archives import extract
from .download import ChecksumError, download as _download, file_digest

__all__ = ["RemoteFile", "OnlineDataset", "ONLINE_DATASETS", "load_online", "list_online",
           "describe_online", "default_root"]


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch, with the checksum its publisher gives (None if there is none)."""
    url: str
    name: str
    md5: str | None = None
    sha256: str | None = None


# parse(folder holding the downloaded files, split, seed) -> data set without a transform
Parser = Callable[[Path, str, int], ImageDataset]


@dataclass(frozen=True)
class OnlineDataset:
    """A registry entry: plain data, so a test or a mirror can ``dataclasses.replace`` it."""
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    splits: tuple[str, ...]
    parse: Parser


def default_root() -> Path:
    """``$TLKIT_DATA``, else ``~/.cache/tlkit/data``."""
    return Path(os.environ.get("TLKIT_DATA", Path.home() / ".cache" / "tlkit" / "data"))


# --- parsers: each gets the folder with the downloaded files --------------------------------

def _hymenoptera(folder: Path, split: str, seed: int) -> ImageDataset:
    from .folder import image_folder  # lazy: folder.py pulls in more than we need here

    tree = extract(folder / "hymenoptera_data.zip", folder / "extracted")
    ds = image_folder(tree / "hymenoptera_data" / split)
    ds.name = f"hymenoptera/{split}"
    return ds


def _flowers102(folder: Path, split: str, seed: int) -> ImageDataset:
    from torchvision.datasets import Flowers102

    # torchvision expects <root>/flowers-102/{jpg/, imagelabels.mat, setid.mat}.
    base = extract(folder / "102flowers.tgz", folder / "flowers-102")
    for name in ("imagelabels.mat", "setid.mat"):
        if not (base / name).exists():
            shutil.copyfile(folder / name, base / name)
    tv = Flowers102(str(folder), split=split, download=False)
    # _image_files/_labels are private, but copying them keeps images on disk (not in memory).
    return FileImages(tv._image_files, targets=tv._labels, classes=tv.classes,
                      name=f"flowers102/{split}", root=base)


def _eurosat(folder: Path, split: str, seed: int) -> ImageDataset:
    from torchvision.datasets import EuroSAT

    # The zip holds 2750/<Class>/*.jpg and torchvision expects <root>/eurosat/2750.
    extract(folder / "EuroSAT.zip", folder / "eurosat")
    tv = EuroSAT(str(folder), download=False)
    targets = np.asarray(tv.targets)
    # No official split: 80/20 per class, so every class keeps its share in both halves.
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(len(tv.classes)):
        idx = rng.permutation(np.flatnonzero(targets == c))
        n_train = int(round(0.8 * len(idx)))
        chosen.append(idx[:n_train] if split == "train" else idx[n_train:])
    keep = np.sort(np.concatenate(chosen))
    return FileImages([tv.samples[i][0] for i in keep], targets=targets[keep].tolist(),
                      classes=tv.classes, name=f"eurosat/{split}", root=tv.root)


def _pneumoniamnist(folder: Path, split: str, seed: int) -> ImageDataset:
    with np.load(folder / "pneumoniamnist.npz", allow_pickle=False) as npz:
        images = npz[f"{split}_images"]
        labels = npz[f"{split}_labels"].reshape(-1)
    return ArrayImages(images, targets=labels.tolist(), classes=["normal", "pneumonia"],
                       name=f"pneumoniamnist/{split}")


def _cifar10(folder: Path, split: str, seed: int) -> ImageDataset:
    from torchvision.datasets import CIFAR10

    tree = extract(folder / "cifar-10-python.tar.gz", folder / "extracted")
    tv = CIFAR10(str(tree), train=(split == "train"), download=False)
    return ArrayImages(tv.data, targets=tv.targets, classes=tv.classes, name=f"cifar10/{split}")


def _sst2(folder: Path, split: str, seed: int) -> ImageDataset:
    from .text import sst2

    return sst2(folder, split, seed)


# --- the registry ---------------------------------------------------------------------------

_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"

ONLINE_DATASETS: dict[str, OnlineDataset] = {e.name: e for e in [
    OnlineDataset(
        "hymenoptera", "Ants vs bees, ~240 train / 150 val photos (PyTorch transfer-learning "
        "tutorial).",
        # No checksum is published: download() records the sha256 of the first download.
        (RemoteFile("https://download.pytorch.org/tutorial/hymenoptera_data.zip",
                    "hymenoptera_data.zip"),),
        ("train", "val"), _hymenoptera),
    OnlineDataset(
        "flowers102", "Oxford 102 Flowers: 102 species, 1020 train / 1020 val / 6149 test photos.",
        # URLs and md5s: torchvision/datasets/flowers102.py, Flowers102._file_dict.
        (RemoteFile(_FLOWERS + "102flowers.tgz", "102flowers.tgz",
                    md5="52808999861908f626f3c1f4e79d11fa"),
         RemoteFile(_FLOWERS + "imagelabels.mat", "imagelabels.mat",
                    md5="e0620be6f572b9609742df49c70aed4d"),
         RemoteFile(_FLOWERS + "setid.mat", "setid.mat", md5="a5357ecc9cb78c4bef273ce3793fc85c")),
        ("train", "val", "test"), _flowers102),
    OnlineDataset(
        "eurosat", "EuroSAT RGB: 27,000 64x64 Sentinel-2 satellite tiles, 10 land-use classes "
        "(80/20 split by seed).",
        # URL and md5: torchvision/datasets/eurosat.py, EuroSAT.download.
        (RemoteFile("https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                    "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", "EuroSAT.zip",
                    md5="c8fa014336c82ac7804f0398fcb19387"),),
        ("train", "test"), _eurosat),
    OnlineDataset(
        "pneumoniamnist", "PneumoniaMNIST: 28x28 paediatric chest X-rays, normal vs pneumonia "
        "(4708 / 524 / 624).",
        # URL and MD5: MedMNIST/MedMNIST medmnist/info.py (v3.0.2), INFO["pneumoniamnist"].
        (RemoteFile("https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
                    "pneumoniamnist.npz", md5="28209eda62fecd6e6a2d98b1501bb15f"),),
        ("train", "val", "test"), _pneumoniamnist),
    OnlineDataset(
        "cifar10", "CIFAR-10: 32x32 photos, 10 classes, 50,000 train / 10,000 test.",
        # URL and md5: torchvision/datasets/cifar.py, CIFAR10.url and CIFAR10.tgz_md5.
        (RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a"),),
        ("train", "test"), _cifar10),
    OnlineDataset(
        "sst2", "SST-2 (GLUE): movie-review sentences, negative / positive, 67,349 train / "
        "872 test (GLUE's labelled dev split).",
        # URL and md5: torchtext/datasets/sst2.py, URL and MD5.
        (RemoteFile("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "SST-2.zip",
                    md5="9f81648d4199384278b86e315dac217c"),),
        ("train", "test"), _sst2),
]}


def list_online() -> list[str]:
    """Names accepted by :func:`load_online`.

    >>> "hymenoptera" in list_online()
    True
    """
    return sorted(ONLINE_DATASETS)


def _entry(name: str) -> OnlineDataset:
    if isinstance(name, str) and name in ONLINE_DATASETS:
        return ONLINE_DATASETS[name]
    raise ValueError(f"Unknown data set {name!r}; available: {', '.join(list_online())}.")


def describe_online(name: str) -> str:
    """One paragraph: what the data set is, its splits and where its files come from.

    >>> print(describe_online("cifar10"))                        # doctest: +ELLIPSIS
    cifar10: CIFAR-10: ...
    """
    e = _entry(name)
    lines = [f"{e.name}: {e.description}", f"  splits: {', '.join(e.splits)}"]
    lines += [f"  file: {f.url}" for f in e.files]
    return "\n".join(lines)


def load_online(name: str, *, split: str = "train", root: str | Path | None = None,
                transform: Callable | None = None, download: bool = True,
                seed: int = 0) -> ImageDataset:
    """Download (once, resumably) and load one split of a registered data set.

    ``seed`` only matters for data sets without an official split (eurosat): it draws that
    split. ``tlkit.load_dataset`` always uses the same one (seed 0), so its splits never mix.

    >>> val = load_online("hymenoptera", split="val")            # doctest: +SKIP
    >>> val.classes                                               # doctest: +SKIP
    ['ants', 'bees']
    """
    e = _entry(name)
    if split not in e.splits:
        raise ValueError(f"{name} has no split {split!r}; its splits are: {', '.join(e.splits)}.")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or pathlib.Path), got {describe(root)}")
    folder = Path(root if root is not None else default_root()).expanduser() / e.name
    if download:
        # Before the first byte: a data folder that is a file or read-only fails here, named.
        writable_folder(folder, what=f"The folder for {name}",
                        fix="Set TLKIT_DATA to a writable folder, or pass root=.")
    for f in e.files:
        path = folder / f.name
        if download:
            _download(f.url, path, sha256=f.sha256, md5=f.md5)
        elif not path.exists():
            raise FileNotFoundError(f"{name} needs {path}, which is missing. Pass download=True, "
                                    f"or download {f.url} and place it there.")
        else:
            # No network allowed, but a corrupt file should still fail here, not deep in parsing.
            algorithm, want = ("sha256", f.sha256) if f.sha256 else ("md5", f.md5)
            if want and file_digest(path, algorithm) != want.lower():
                raise ChecksumError(f"{path} does not match its published {algorithm} {want}; "
                                    f"delete it and pass download=True, or place a good copy "
                                    f"there.")
    ds = e.parse(folder, split, seed)
    return ds.with_transform(transform) if transform is not None else ds
