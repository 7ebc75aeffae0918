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
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ._dataset import ImageDataset
from .backbones import Backbone
from .device import default_device

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


def cache_key(model: Backbone, data: ImageDataset) -> str:
    """A hash of backbone name, weights (their actual values), transform and data."""
    h = hashlib.sha256()
    h.update(json.dumps({"backbone": model.name, "weights": model.weights.name,
                         "transform": repr(data.transform), "data": data.fingerprint(),
                         "n": len(data)}).encode())
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
    ``model.weights.transforms()``.
    """
    if data.transform is None:
        raise ValueError("the data set has no transform, so its items are PIL images: load it "
                         "with transform=model.weights.transforms()")
    start = time.perf_counter()
    path = None
    if cache:
        path = Path(cache_dir or feature_cache_dir()) / f"{model.name}-{cache_key(model, data)}.pt"
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return Features(saved["x"], saved["y"], True, time.perf_counter() - start, path)

    device = torch.device(device) if device is not None else default_device()
    was_training = model.training
    model.eval().to(device)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False,
                                         pin_memory=device.type == "cuda")
    chunks, labels = [], []
    for images, targets in tqdm(loader, desc=f"features {model.name}", disable=not progress,
                                leave=False):
        chunks.append(model.forward_features(images.to(device, non_blocking=True)).float().cpu())
        labels.append(targets)
    model.train(was_training)
    x, y = torch.cat(chunks), torch.cat(labels)

    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"x": x, "y": y}, tmp)
        os.replace(tmp, path)  # atomic: an interrupted save never leaves a half-written cache
    return Features(x, y, False, time.perf_counter() - start, path)
