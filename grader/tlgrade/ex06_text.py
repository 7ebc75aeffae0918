"""ex06_text_transfer: mean pooling written by hand, a sentiment classifier on MiniLM features,
and nearest neighbours by cosine similarity.

The accuracy is measured on held-out VADER words drawn here; only the words enter the sandbox.
Their ratings ship with vaderSentiment, so inside the sandbox every copy of the lexicon is
shown without the held-out words (``masks``): a student's code cannot look a word up, it has
to classify it. Which words are held out depends on each word alone (a hash), so the training
words a notebook loads inside the sandbox are exactly those it loads outside.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from tlkit.teach import exercises as ex
from tlkit.teach.selfcheck import TEXT_ACCURACY_BAR

from .checks import Arrays, Check, CheckFailed, Context, register


def _pool_inputs(ctx: Context) -> Arrays:
    return ex.pooling_problem(ctx.seed)


def _pool_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    vectors, mask = inputs["vectors"].astype(np.float64), inputs["mask"]
    mean = (vectors * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    want = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    got = outputs["pooled"]
    if got.shape != want.shape:
        raise CheckFailed(f"mean_pool of {vectors.shape} token vectors gave shape {got.shape}; "
                          f"expected {want.shape}: one vector per text.")
    if not np.all(np.isfinite(got)) or not np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4):
        raise CheckFailed("the pooled vectors do not have length 1: divide each by its norm.")
    if not np.allclose(got, want, atol=1e-4):
        raise CheckFailed("not the mean of the real tokens: leave the padded positions (mask 0) "
                          "out of the sum and out of the count.")
    return f"{len(want)} texts pooled over their real tokens, length 1"


@lru_cache(maxsize=1)
def _test_words() -> tuple[list[str], np.ndarray]:
    from tlkit.data.catalog import load_dataset

    test = load_dataset("vader_words", split="test")
    return test.texts, np.array(test.targets)


def _accuracy_inputs(ctx: Context) -> Arrays:
    words, labels = _test_words()
    return {"words": np.array([words[i] for i in ex.words_test_draw(ctx.seed, labels)])}


def _accuracy_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    words, labels = _test_words()
    label_of = dict(zip(words, labels.tolist()))
    want = np.array([label_of[str(w)] for w in inputs["words"]])
    predicted = outputs["predicted"]
    if predicted.shape != want.shape:
        raise CheckFailed(f"predict gave {predicted.shape[0]} labels for {len(want)} words.")
    accuracy = float((predicted == want).mean())
    if accuracy < TEXT_ACCURACY_BAR:
        raise CheckFailed(f"accuracy {accuracy:.2f} on {len(want)} held-out words; the bar is "
                          f"{TEXT_ACCURACY_BAR}. Are the training labels aligned with the "
                          f"features?")
    return f"accuracy {accuracy:.2f} on {len(want)} held-out words (bar {TEXT_ACCURACY_BAR})"


@lru_cache(maxsize=1)
def _encoder():
    from tlkit.models.text import get_text_encoder

    return get_text_encoder()


def _similar_inputs(ctx: Context) -> Arrays:
    from tlkit.data.catalog import load_dataset

    problem = ex.similarity_problem(ctx.seed, load_dataset("vader_words", split="train").texts)
    return {"word": np.array(problem["word"]), "candidates": np.array(problem["candidates"]),
            "n": np.array(problem["n"])}


def _similar_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    word, n = str(inputs["word"]), int(inputs["n"])
    candidates = [str(c) for c in inputs["candidates"]]
    e = _encoder().encode([word, *candidates])
    sims = dict(zip(candidates, (e[1:] @ e[0]).tolist()))
    got = [str(w) for w in outputs["similar"]]
    if len(got) != n or len(set(got)) != n or any(w not in sims for w in got):
        raise CheckFailed(f"most_similar(word, candidates, n={n}) must return {n} different "
                          f"candidates, got {got[:6]}.")
    # Judged by similarity, not by name: two candidates equally close may come in either order.
    if not np.allclose([sims[w] for w in got], sorted(sims.values(), reverse=True)[:n], atol=1e-4):
        raise CheckFailed("not the most similar candidates, most similar first: rank them by "
                          "the cosine similarity of their embeddings to the word's.")
    return f"the {n} nearest of {len(candidates)} candidates, in order"


def lexicon_without_test_words() -> bytes:
    """vaderSentiment's lexicon file without the lines of held-out words."""
    from tlkit.data.text import in_test_split

    path = _lexicon_files()[0]
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if not in_test_split(line.split("\t")[0])).encode()


def _lexicon_files() -> list[Path]:
    found = []
    for entry in sys.path:
        path = Path(entry or ".", "vaderSentiment", "vader_lexicon.txt")
        if path.is_file() and path.resolve() not in found:
            found.append(path.resolve())
    return found


def masks() -> dict[str, bytes]:
    """Every copy of the lexicon the sandbox could read -> the lexicon without the test words."""
    shown = lexicon_without_test_words() if _lexicon_files() else b""
    return {str(path): shown for path in _lexicon_files()}


register(Check("ex06.pool", ("mean_pool",), "pool", _pool_inputs, _pool_verify))
register(Check("ex06.accuracy", ("predict",), "predict_words", _accuracy_inputs,
               _accuracy_verify, masks=masks))
register(Check("ex06.similar", ("most_similar",), "similar", _similar_inputs, _similar_verify))
