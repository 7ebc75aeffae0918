"""A small CNN trained from scratch: the "traditional" baseline transfer learning must beat."""
from __future__ import annotations

from torch import nn

from ..core.checks import integer
from .backbone import Backbone
from .weights import Weights

__all__ = ["small_cnn"]


def small_cnn(*, num_classes: int, width: int = 16) -> Backbone:
    """Three conv blocks (width, 2·width, 4·width channels) → global pool → linear head.

    It has the same contract as a pretrained backbone (blocks, neck, head, ``weights``), so the
    same ``fit`` / ``freeze`` calls work; its ``weights.pretrained`` is False.

    Example: ``model = tlkit.small_cnn(num_classes=2)``
    """
    num_classes = integer("num_classes", num_classes, min=1)
    width = integer("width", width, min=1)

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2))

    blocks = [block(3, width), block(width, 2 * width), block(2 * width, 4 * width)]
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    weights = Weights(name="small_cnn.random", pretrained=False, resize=32, crop=32,
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                      meta={"categories": None, "source": "tlkit.small_cnn"})
    # Three 2×2 max-pools: below 8 px a feature map would shrink to nothing.
    return Backbone(name="small_cnn", blocks=blocks, neck=neck,
                    head=nn.Linear(4 * width, num_classes), num_features=4 * width,
                    weights=weights, min_size=8)
