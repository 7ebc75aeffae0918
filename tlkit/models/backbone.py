"""The backbone contract: every pretrained network, whatever its architecture, is a
:class:`Backbone` split into ``blocks`` → ``neck`` → ``head``.

* ``blocks``: the convolutional body as a few *stages*, one per feature-map resolution
  (stem + early … late), so "unfreeze the last 2 blocks" means the same thing everywhere;
* ``neck``: global pooling (and, for VGG / MobileNetV3, the fully connected layers before the
  last), ending in a vector of ``num_features`` numbers — the *features*;
* ``head``: the final classifier, replaced with ``reset_head(n)``;
* ``weights``: a :class:`~tlkit.models.weights.Weights` with ``pretrained``, ``transforms()``
  and ``meta``.

Example::

    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", num_classes=2)
    features = model.forward_features(batch)      # (N, 1280)
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.checks import integer, number
from .weights import Weights

__all__ = ["BN_MODES", "Backbone", "require_backbone"]

# The batch-norm policies of tlkit.set_batchnorm (listed in its error message, in this order).
BN_MODES = ("inference", "frozen", "train")


class Backbone(nn.Module):
    """A pretrained network split into ``blocks`` → ``neck`` → ``head``.

    Batch norm (``bn_mode``, see :func:`tlkit.set_batchnorm`): with pretrained weights every
    batch-norm layer stays in eval mode, γ and β frozen (``"inference"``), even after
    ``model.train()`` and ``unfreeze``; with random weights (``"frozen"``) batch norm trains,
    except inside frozen blocks.
    """

    def __init__(self, *, name: str, blocks: list[nn.Module], neck: nn.Module, head: nn.Module,
                 num_features: int, weights: Weights, min_size: int = 1) -> None:
        super().__init__()
        self.name = name
        self.blocks = nn.Sequential(*blocks)
        self.neck = neck
        self.head = head
        self.num_features = num_features
        self.weights = weights
        # The smallest image side the blocks accept (VGG halves 5 times: 32 px).
        self.min_size = min_size
        first_conv = next((m for m in self.blocks.modules() if isinstance(m, nn.Conv2d)), None)
        self.in_channels = first_conv.in_channels if first_conv is not None else 3
        # The batch-norm policy (tlkit.set_batchnorm). "inference" for pretrained weights:
        # every batch-norm layer keeps its statistics, γ and β (lesson 05 measures why).
        # Random weights have no statistics worth keeping: "frozen", i.e. batch norm trains
        # except inside frozen blocks.
        self.bn_mode = "inference" if weights.pretrained else "frozen"
        if self.bn_mode == "inference":
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.requires_grad_(False)

    def __setattr__(self, name: str, value) -> None:
        # The torchvision tutorial writes model.fc = nn.Linear(...): on a Backbone that would
        # add a module nobody calls, and training would go on with the old head, silently.
        if name in ("fc", "classifier", "last_linear") and isinstance(value, nn.Module):
            raise AttributeError(
                f"a tlkit Backbone's classifier is model.head, not model.{name}: write "
                f"model.head = nn.Linear(model.num_features, n), or tlkit.replace_head(model, n)")
        super().__setattr__(name, value)

    @property
    def num_classes(self) -> int:
        """Width of the head's output; 0 when there is no head (``num_classes=0``)."""
        linears = [m for m in self.head.modules() if isinstance(m, nn.Linear)]
        return linears[-1].out_features if linears else 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) → feature vectors (N, num_features)."""
        self._check_images(x)
        return self.neck(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, early to late (what the layers "see")."""
        self._check_images(x)
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def reset_head(self, num_classes: int, *, dropout: float = 0.0) -> nn.Module:
        """Put a new, randomly initialised head for ``num_classes`` (0: no head)."""
        num_classes = integer("num_classes", num_classes, min=0,
                              hint="pass the number of classes, e.g. len(train.classes)")
        dropout = number("dropout", dropout, min=0, max=0.99)
        if num_classes == 0:
            self.head = nn.Identity()
        else:
            linear = nn.Linear(self.num_features, num_classes)
            self.head = nn.Sequential(nn.Dropout(dropout), linear) if dropout else linear
        return self.head

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if mode and self.bn_mode != "train":
            for m in self.modules():
                if not isinstance(m, nn.modules.batchnorm._BatchNorm):
                    continue
                params = list(m.parameters(recurse=False))
                if self.bn_mode == "inference" or (params and not any(p.requires_grad
                                                                      for p in params)):
                    m.eval()
        return self

    def _check_images(self, x) -> None:
        # Shapes only, so the check costs nothing; each message says what to change.
        if not torch.is_tensor(x):
            raise TypeError(f"{self.name} takes a tensor of images (N, 3, H, W), got "
                            f"{type(x).__name__}: apply model.weights.transforms() to a PIL image"
                            f" and stack, or load data with transform=model.weights.transforms()")
        shape = tuple(x.shape)
        if x.dim() == 2 and shape[1] == self.num_features:
            raise ValueError(f"{self.name} got {shape}: these look like cached features, not "
                             f"images. Train or run the head alone: model.head(x), or "
                             f"tlkit.fit(model.head, (x, y))")
        if x.dim() == 3 and shape[0] == self.in_channels:
            raise ValueError(f"{self.name} got one image {shape} without a batch dimension: "
                             f"pass x.unsqueeze(0), shape (1, {', '.join(map(str, shape))})")
        if x.dim() != 4:
            raise ValueError(f"{self.name} takes images of shape (N, {self.in_channels}, H, W), "
                             f"got {shape}")
        if shape[1] != self.in_channels and shape[3] == self.in_channels:
            raise ValueError(f"{self.name} got images {shape} with the colour channels last "
                             f"(N, H, W, C); it takes (N, C, H, W): pass x.permute(0, 3, 1, 2), "
                             f"or build them with T.ToTensor() / model.weights.transforms()")
        if shape[1] != self.in_channels:
            raise ValueError(
                f"{self.name} takes {self.in_channels}-channel (RGB) images, got {shape[1]} "
                f"channel(s) {shape}. Use model.weights.transforms(), which makes RGB from "
                f"grey images; or T.Grayscale(num_output_channels=3) instead of Grayscale(1)")
        if min(shape[2:]) < self.min_size:
            raise ValueError(
                f"images of {shape[2]}×{shape[3]} px are too small for {self.name}: it needs "
                f"at least {self.min_size} px per side. Use model.weights.transforms(size=...) "
                f"with size >= {self.min_size}")

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, weights={self.weights.name!r}, "
                f"num_features={self.num_features}, blocks={len(self.blocks)}")


def require_backbone(model, *, function: str) -> None:
    """TypeError unless ``model`` is a :class:`Backbone`, saying how to get one."""
    if isinstance(model, Backbone):
        return
    kind = type(model).__name__
    module = type(model).__module__.split(".")[0]
    where = (f" This looks like a {module} model: build it with tlkit.get_backbone(name) so it "
             f"has blocks, a neck and a head." if module in ("torchvision", "timm") else "")
    raise TypeError(f"{function}() needs a tlkit Backbone (from tlkit.get_backbone or "
                    f"tlkit.small_cnn), got {kind}.{where} For a plain nn.Module set "
                    f"p.requires_grad yourself (lesson 04 shows how).")
