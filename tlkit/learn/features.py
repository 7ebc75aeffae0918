"""Feature extraction with a disk cache (lesson 04).

A frozen backbone gives the same features for the same image every epoch, so compute them
once: training a head on cached features then costs a matrix multiply per epoch instead of a
full forward pass through the network. The cache key covers everything that changes the
numbers: the backbone and its current weights, the transform, and the data.

Example::

    X, y = tlkit.extract_features(model, train)      # first call: runs the backbone
    X, y = tlkit.extract_features(model, train)      # second call: reads the cache
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..core.checks import flag, integer, writable_folder
from ..core.device import as_device, running_on
from ..data.images import ImageDataset
from ..models.backbone import Backbone, require_backbone
from .inputs import as_dataset, batches, untransformed_hint

__all__ = ["extract_features", "Features", "feature_cache_dir"]


def feature_cache_dir() -> Path:
    """``$TLKIT_CACHE/features``, default ``~/.cache/tlkit/features``."""
    base = os.environ.get("TLKIT_CACHE", Path.home() / ".cache" / "tlkit")
    return Path(base) / "features"


@dataclass
class Features:
    """Features ``x`` (N, num_features) and labels ``y``; unpacks as ``x, y``."""

    x: torch.Tensor
    y: torch.Tensor
    from_cache: bool
    seconds: float
    path: Path | None

    def __iter__(self):
        return iter((self.x, self.y))


def transform_probe(data: ImageDataset) -> bytes | None:
    """What the transform makes of the first image, or None when it is random.

    ``repr(transform)`` alone cannot tell two ``Lambda`` steps apart, so the key also holds
    the transform's output; a transform that gives two outputs for one image (augmentation)
    must not be cached at all. Run under a forked RNG: the caller's random state is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        outputs = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            outputs.append(torch.as_tensor(data[0][0]).detach().cpu().contiguous())
    if not torch.equal(*outputs):
        return None
    return outputs[0].reshape(-1).view(torch.uint8).numpy().tobytes()


def cache_key(model: Backbone, data: ImageDataset, probe: bytes = b"") -> str:
    """A hash of backbone name, weights (their actual values), transform and data."""
    h = hashlib.sha256()
    h.update(json.dumps({"backbone": model.name, "weights": model.weights.name,
                         "transform": repr(data.transform), "data": data.fingerprint(),
                         "n": len(data)}).encode())
    h.update(probe)
    # The values, not just the name: a fine-tuned backbone must not reuse stale features.
    for module in (model.blocks, model.neck):
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


@torch.no_grad()
def extract_features(model: Backbone, data: ImageDataset, *, batch_size: int = 64,
                     cache: bool = True, cache_dir: str | Path | None = None,
                     device: torch.device | str | None = None,
                     progress: bool = True) -> Features:
    """Run ``data`` through the frozen backbone once (``model.forward_features``) and cache it.

    ``data`` must carry the transform that turns its images into tensors, usually
    ``model.weights.transforms()``. A tlkit data set is cached on disk; any other Dataset of
    ``(image tensor, label)`` works too, without the cache. A cache folder that cannot be
    written gives a warning, and the features all the same.

    Example: ``x, y = tlkit.extract_features(model, train)``
    """
    require_backbone(model, function="extract_features")
    batch_size = integer("batch_size", batch_size, min=1)
    cache, progress = flag("cache", cache), flag("progress", progress)
    if isinstance(data, (tuple, list)):
        raise TypeError("extract_features takes a data set of images; a tuple (x, y) looks like "
                        "features already: train a head on it with tlkit.fit(head, (x, y))")
    if not isinstance(data, torch.utils.data.Dataset):
        raise TypeError(f"data must be a data set of images (tlkit.load_dataset, "
                        f"tlkit.image_folder), got {type(data).__name__}")
    if getattr(data, "transform", True) is None:
        raise ValueError(f"the data set has no transform, so {untransformed_hint(data)}")
    if len(data) == 0:
        raise ValueError(f"{data!r} is empty: there are no images to extract features from")
    as_dataset(data, name="data", labelled=False)  # the first item: a tensor, not a PIL image
    device = as_device(device)
    if not model.weights.pretrained:
        warnings.warn(f"{model.name} has random weights (weights=None): its features are "
                      f"random, so nothing is transferred. For ImageNet features build it with "
                      f"weights='imagenet'", UserWarning, stacklevel=2)
    start = time.perf_counter()
    path = _cache_path(model, data, cache_dir) if cache and isinstance(data, ImageDataset) \
        else None
    if path is not None and path.is_file():
        saved = _read_cache(path, model, data)
        if saved is not None:
            return Features(saved["x"], saved["y"], True, time.perf_counter() - start, path)

    was_training = model.training
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False,
                                         pin_memory=device.type == "cuda")
    chunks, labels = [], []
    with running_on(model.eval(), device):  # the device rule: see tlkit/core/device.py
        for images, targets in tqdm(batches(loader, name="data"), total=len(loader),
                                    desc=f"features {model.name}", disable=not progress,
                                    leave=False):
            chunks.append(model.forward_features(images.to(device, non_blocking=True))
                          .float().cpu())
            labels.append(torch.as_tensor(targets))
    model.train(was_training)
    x, y = torch.cat(chunks), torch.cat(labels)

    if path is not None:
        try:
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save({"x": x, "y": y}, tmp)
            os.replace(tmp, path)  # atomic: an interrupted save never leaves a half-written cache
        except OSError as err:  # the disk filled up, or a folder became read-only meanwhile
            warnings.warn(f"The features could not be cached in {path.parent} ({err}); they are "
                          f"returned all the same.", UserWarning, stacklevel=2)
            path = None
    return Features(x, y, False, time.perf_counter() - start, path)


def _cache_path(model: Backbone, data: ImageDataset, cache_dir) -> Path | None:
    """The cache file for (model, data), or None (with a warning) if it must not be cached."""
    probe = transform_probe(data)
    if probe is None:
        warnings.warn("the transform is random (augmentation?): features are computed afresh "
                      "and not cached, since a cache would freeze one random draw. For cached "
                      "features use model.weights.transforms() without augment=True",
                      UserWarning, stacklevel=3)
        return None
    try:
        folder = writable_folder(cache_dir if cache_dir is not None else feature_cache_dir(),
                                 what="The feature cache",
                                 fix="Pass cache_dir= a writable folder, set TLKIT_CACHE, or "
                                     "cache=False.")
    except (NotADirectoryError, PermissionError, TypeError) as err:
        warnings.warn(f"{err} The features are computed but not cached.", UserWarning,
                      stacklevel=3)
        return None
    return folder / f"{model.name}-{cache_key(model, data, probe)}.pt"


def _read_cache(path: Path, model: Backbone, data: ImageDataset) -> dict | None:
    """The cached features if the file is sound and fits ``data``; None means recompute."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        x, y = saved["x"], saved["y"]
        fits = (x.shape == (len(data), model.num_features) and
                torch.equal(y, torch.as_tensor(data.targets)))
    except Exception:  # noqa: BLE001 — a truncated or foreign file: compute afresh
        fits = False
    return saved if fits else None
