"""The main job's text task (``make demo``): does a pretrained sentence encoder beat learning
sentiment from scratch, on words it was never shown?

On ``vader_words`` (English words rated negative / positive by 10 people each, from the VADER
lexicon in ``vaderSentiment``) with 2 … 100 labelled words per class, over 10 seeds, three
inputs to the same logistic regression, scored on the same held-out words:

1. character n-grams (2–4 letters)              (traditional machine learning, from scratch)
2. MiniLM's input embeddings (layer 0)           (static word-piece vectors, pretrained)
3. MiniLM's sentence embeddings (last layer)     (feature extraction, frozen encoder)

Lesson 07 adds fine-tuning and a bag of word pieces trained from scratch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["run_text_demo"]

METHODS = ("character n-grams (scratch) + logistic regression",
           "MiniLM input embeddings + logistic regression",
           "MiniLM features (last layer) + logistic regression")


def run_text_demo(*, ks: Sequence[int] = (2, 5, 10, 25, 100),
                  seeds: Sequence[int] = tuple(range(10)),
                  out_dir: str | Path = "results") -> dict:
    """Run the comparison; return ``{"accuracy": {method: {k: [accuracy per seed]}}, ...}``."""
    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import tlkit

    encoder = tlkit.get_text_encoder("all-minilm-l6-v2")
    test = tlkit.load_dataset("vader_words", split="test")
    pools = {s: tlkit.load_dataset("vader_words", k_per_class=max(ks), seed=s) for s in seeds}
    words = sorted(set(test.texts).union(*(p.texts for p in pools.values())))
    tables = {METHODS[1]: dict(zip(words, encoder.encode(words, layer=0))),
              METHODS[2]: dict(zip(words, encoder.encode(words)))}

    def logistic(table, texts, labels) -> float:
        x = torch.stack([table[w] for w in texts]).numpy()
        model = LogisticRegression(max_iter=1000).fit(x, labels)
        return float(model.score(torch.stack([table[w] for w in test.texts]).numpy(),
                                 test.targets))

    def ngrams(texts, labels) -> float:
        model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)),
                              LogisticRegression(max_iter=1000))
        return float(model.fit(texts, labels).score(test.texts, test.targets))

    acc = {m: {k: [] for k in ks} for m in METHODS}
    secs = {m: [] for m in METHODS}
    for seed in seeds:
        for k in ks:
            labelled = tlkit.few_shot(pools[seed], k_per_class=k, seed=seed)
            for method in METHODS:
                started = time.perf_counter()
                acc[method][k].append(
                    ngrams(labelled.texts, labelled.targets) if method == METHODS[0]
                    else logistic(tables[method], labelled.texts, labelled.targets))
                secs[method].append(time.perf_counter() - started)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"accuracy": acc, "seconds_per_run": {m: float(np.mean(s)) for m, s in secs.items()},
              "ks": list(ks), "seeds": list(seeds), "encoder": encoder.name,
              "test_words": len(test)}
    from .demo import seed_stats, format_table, what_the_runs_show

    result["summary"] = {m: {k: seed_stats(v) for k, v in by_k.items()} for m, by_k in acc.items()}
    (out_dir / "demo_text.json").write_text(json.dumps(result, indent=2))
    _plot(acc, len(test), out_dir / "demo_text_data_efficiency.png")
    print(format_table(result, title=f"vader_words, accuracy on {len(test)} held-out words "
                                     f"(mean ± standard error = std/√n over {len(seeds)} "
                                     f"seeds), k = labelled words per class"))
    print("\n".join(what_the_runs_show(result)))
    print(f"plot: {out_dir / 'demo_text_data_efficiency.png'}   numbers: "
          f"{out_dir / 'demo_text.json'}")
    return result


def _plot(acc: dict, n_test: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # the demo runs headless
    import matplotlib.pyplot as plt

    from .viz import plot_data_efficiency

    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_data_efficiency(acc, ax=ax, xlabel="labelled words per class")
    ax.axhline(0.5, color="grey", linestyle=":")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"sentiment of {n_test} unseen words: accuracy against labels per class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
