"""Small models trained from scratch: the "traditional" baselines transfer learning must beat —
a CNN for images, a bag of word-piece embeddings for text."""
from __future__ import annotations

import torch
from torch import nn

from ..core.checks import integer
from .backbone import Backbone
from .weights import Weights

__all__ = ["small_cnn", "small_text_model", "EmbeddingBagClassifier"]


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


class EmbeddingBagClassifier(nn.Module):
    """Token ids (N, L) → the mean of their learned vectors (padding 0 excluded) → class scores."""

    def __init__(self, *, vocab_size: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(ids) or ids.is_floating_point() or ids.dim() != 2:
            raise TypeError(f"small_text_model takes token ids (N, L) from a tokenizer, e.g. "
                            f"encoder.weights.transforms(), got "
                            f"{type(ids).__name__} {tuple(getattr(ids, 'shape', ()))}")
        return self.head(self.embed(ids))


def small_text_model(*, num_classes: int, vocab_size: int = 30522, dim: int = 32) -> nn.Module:
    """A bag of word-piece embeddings, learned from nothing: every vector starts random.

    It reads the same token ids as a pretrained encoder (its tokenizer splits words into the
    same pieces), so the two differ only in what was learned before.

    Example: ``model = tlkit.small_text_model(num_classes=2)``
    """
    num_classes = integer("num_classes", num_classes, min=1)
    return EmbeddingBagClassifier(vocab_size=integer("vocab_size", vocab_size, min=2),
                                  dim=integer("dim", dim, min=1), num_classes=num_classes)
