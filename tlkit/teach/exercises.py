"""The graded exercises' problems: the inputs a check feeds to a student's functions.

Each function draws one problem from a seed, so the student's self-check (seed 0, the public
problem) and the instructor's grader (seed 0 for visible checks, a secret seed for hidden ones)
pose exactly the same questions. Nothing here says what the right answer is: the self-check
compares with salted hashes (``selfcheck``), the grader recomputes references on its own side.

Example::

    problem = sgd_problem(0, momentum=True, weight_decay=False)
    problem["lr"], problem["params"][0].shape
"""
from __future__ import annotations

import numpy as np

__all__ = ["STEPS", "sgd_problem", "small_mlp", "num_classes", "random_images", "FACES_SIZE",
           "faces_test_draw", "finetune_setting", "strategy_scenarios", "QUIZ_OPTIONS",
           "TEXT_K", "pooling_problem", "words_test_draw", "similarity_problem"]

STEPS = 3  # momentum only shows after more than one step
FACES_SIZE = 96  # ex03's crop: the 25 × 25 faces gain nothing from 224
FACES_PER_CLASS = 15  # held-out images per class in one accuracy check
SMALL = 1000  # ex05: fewer labelled images per class than this is "small"
QUIZ_OPTIONS = {"q1": ("a", "b", "c"), "q2": ("a", "b", "c"), "q3": ("a", "b", "c")}
TEXT_K = 50  # ex06: labelled training words per class
TEXT_TEST_WORDS = 300  # ex06: held-out words in one accuracy check


def sgd_problem(seed: int, *, momentum: bool, weight_decay: bool) -> dict:
    """ex01: random shapes, values, gradients for ``STEPS`` steps, and hyper-parameters.

    Every number is a multiple of a power of two (quarters, eighths), so a correct update is
    exact in float32 whatever the order of its operations: right is right to the last bit.
    """
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 3)))
              for _ in range(rng.integers(2, 4))]
    quarters = lambda shape: (rng.integers(-8, 9, size=shape) / 4).astype(np.float32)  # noqa: E731
    return {
        "params": [quarters(s) for s in shapes],
        "grads": [[quarters(s) for s in shapes] for _ in range(STEPS)],
        "lr": float(rng.choice([0.125, 0.25, 0.375, 0.5])),
        "momentum": float(rng.choice([0.5, 0.75, 0.875])) if momentum else 0.0,
        "weight_decay": float(rng.choice([0.125, 0.25])) if weight_decay else 0.0,
    }


def small_mlp(seed: int):
    """ex02: a random small network with some layers frozen (the first always, the last never)."""
    from torch import nn

    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(2, 9, size=rng.integers(3, 6))]
    layers = [nn.Linear(a, b, bias=bool(rng.integers(0, 2))) for a, b in zip(widths, widths[1:])]
    for i, layer in enumerate(layers):
        layer.requires_grad_(i == len(layers) - 1 or (i > 0 and bool(rng.integers(0, 2))))
    return nn.Sequential(*layers)


def num_classes(seed: int) -> int:
    """ex02: how many classes the new head must have."""
    return int(np.random.default_rng(seed).integers(2, 10))


def random_images(seed: int, *, n: int = 3, size: int = FACES_SIZE) -> np.ndarray:
    """Random preprocessed images, (n, 3, size, size) float32."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3, size, size)).astype(np.float32)


def faces_test_draw(seed: int, labels: np.ndarray) -> np.ndarray:
    """ex03: indices into the faces test split, ``FACES_PER_CLASS`` per class, shuffled."""
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), FACES_PER_CLASS,
                                        replace=False) for c in np.unique(labels)])
    rng.shuffle(chosen)
    return chosen


def finetune_setting(seed: int) -> dict:
    """ex04: how many blocks to unfreeze, and the two learning rates."""
    rng = np.random.default_rng(seed)
    return {"n": int(rng.integers(1, 4)), "lr_backbone": float(rng.choice([1e-4, 3e-4, 1e-3])),
            "lr_head": float(rng.choice([1e-2, 3e-2]))}


def strategy_scenarios(seed: int) -> list[tuple[int, bool]]:
    """ex05: every cell of the table twice (small/large × similar/different), shuffled."""
    rng = np.random.default_rng(seed)
    cells = [(small, similar) for small in (True, False) for similar in (True, False)] * 2
    out = [(int(rng.integers(2, SMALL)) if small else int(rng.integers(SMALL, 50_000)), similar)
           for small, similar in cells]
    rng.shuffle(out)
    return out


def finetune_model(seed: int, num_classes: int = 2):
    """ex04: pretrained Lite0 with a new head drawn from ``seed`` (the caller's RNG untouched)."""
    import torch

    from ..models.factory import get_backbone
    from ..models.surgery import replace_head, set_batchnorm

    # ex04 practises the "frozen" policy by hand (frozen blocks' batch norm in eval mode, the
    # unfrozen blocks' learning): set it, since pretrained backbones default to "inference".
    model = set_batchnorm(get_backbone("efficientnet_lite0"), "frozen")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        replace_head(model, num_classes)
    return model


def finetune_batch(seed: int, *, k_per_class: int = 4, size: int = 64):
    """ex04: a batch of real training faces and non-faces, (images, labels)."""
    import torch

    from ..data.catalog import load_dataset
    from ..models.factory import backbone_weights

    data = load_dataset("faces", split="train", k_per_class=k_per_class, seed=seed % 1000,
                        transform=backbone_weights("efficientnet_lite0").transforms(size=size))
    images, labels = zip(*(data[i] for i in range(len(data))))
    return torch.stack(images), torch.tensor(labels)


def ask(variant, question: str, text: str, options: dict[str, str]) -> None:
    """ex05: print a question with its options in this student's order, lettered a, b, c."""
    shown = variant.order(question, list(options))
    print(f"{question}. {text}")
    for letter, key in zip("abcdefgh", shown):
        print(f"   ({letter}) {options[key]}")


def canonical(variant, question: str, letter: str) -> str:
    """ex05: which of the question's options the letter ``letter`` shows to this student."""
    shown = variant.order(question, list(QUIZ_OPTIONS[question]))
    index = "abcdefgh".find(str(letter).strip().lower()[:1]) if str(letter).strip() else -1
    return shown[index] if 0 <= index < len(shown) else "?"


def pooling_problem(seed: int) -> dict:
    """ex06: token vectors (N, L, D) and a 0/1 mask (N, L); each row has real tokens then
    padding (row 0 none), and the padded positions hold large numbers, not zeros."""
    rng = np.random.default_rng(seed)
    n, length, dim = int(rng.integers(3, 7)), int(rng.integers(5, 12)), int(rng.integers(4, 17))
    lengths = rng.integers(1, length + 1, size=n)
    lengths[0] = length
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    vectors = rng.normal(size=(n, length, dim)).astype(np.float32)
    vectors[mask == 0] = rng.normal(loc=5.0, size=(int((mask == 0).sum()), dim))
    return {"vectors": vectors, "mask": mask}


def words_test_draw(seed: int, labels: np.ndarray) -> np.ndarray:
    """ex06: ``TEXT_TEST_WORDS`` indices into the vader_words test split, shuffled."""
    rng = np.random.default_rng(seed)
    return rng.choice(len(labels), size=min(TEXT_TEST_WORDS, len(labels)), replace=False)


def similarity_problem(seed: int, words: list[str]) -> dict:
    """ex06: a query word, 30 candidate words from ``words`` (never the query) and how many of
    the nearest to ask for: enough that a ranking by anything but cosine similarity shows."""
    rng = np.random.default_rng(seed)
    chosen = [words[i] for i in rng.choice(len(words), size=31, replace=False)]
    return {"word": chosen[0], "candidates": chosen[1:], "n": int(rng.integers(5, 9))}
