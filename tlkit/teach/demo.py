"""The main job (``make demo``): does transfer learning beat training from scratch, offline?

On ``faces`` (real LFW photographs in scikit-image) with 2, 5, 10 and 25 labelled images per
class, over 10 seeds, four ways to build a face / non-face classifier:

1. raw pixels + logistic regression            (traditional machine learning)
2. a small CNN trained from scratch            (deep learning without transfer)
3. ImageNet Lite0 features + logistic regression (feature extraction, frozen backbone)
4. ImageNet Lite0 fine-tuned                    (head on the features, then every layer)

Every method sees the same images and is scored on the same held-out test half. Faces are an
easy two-class task, so a harder one follows: scikit-learn's handwritten digits, 10 classes,
1 … 10 labels per class, far from ImageNet's photographs (methods 1–3; see ``run_digits_demo``).
Each prints a table (mean ± standard error over seeds), what the runs show, and saves a plot.
Then the same question for text (:mod:`tlkit.teach.demo_text`): sentiment of words never shown.
"""
from __future__ import annotations

import argparse
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .demo_tasks import compare_methods, digits_task, faces_task

__all__ = ["run_demo", "run_digits_demo", "format_table", "seed_stats", "what_the_runs_show"]

SIZE = 64  # input pixels for the ImageNet backbone: 10 seeds of 4 methods fit 2 CPU cores
SEEDS = tuple(range(10))


def run_demo(*, ks: Sequence[int] = (2, 5, 10, 25), seeds: Sequence[int] = SEEDS,
             out_dir: str | Path = "results",
             backbone: str = "efficientnet_lite0", size: int = SIZE, head_epochs: int = 8,
             finetune_epochs: int = 2, scratch_epochs: int = 40,
             progress: bool = False) -> dict:
    """Faces, four methods; return ``{"accuracy": {method: {k: [per seed]}}, ...}``."""
    _use_every_core()
    result = compare_methods(task=faces_task(), ks=ks, seeds=seeds, backbone=backbone,
                             size=size, head_epochs=head_epochs,
                             finetune_epochs=finetune_epochs, scratch_epochs=scratch_epochs,
                             progress=progress)
    result.update(ks=list(ks), seeds=list(seeds), backbone=backbone, size=size,
                  head_epochs=head_epochs, finetune_epochs=finetune_epochs,
                  scratch_epochs=scratch_epochs, test_images=100)
    return _report(result, Path(out_dir), "demo", task="faces",
                   plot_title="faces vs. non-faces: accuracy against labels per class",
                   unit="images")


def run_digits_demo(*, ks: Sequence[int] = (1, 2, 5, 10), seeds: Sequence[int] = SEEDS,
                    out_dir: str | Path = "results",
                    backbone: str = "efficientnet_lite0", size: int = SIZE,
                    scratch_epochs: int = 40, scratch_size: int = 16,
                    progress: bool = False) -> dict:
    """Digits (10 classes, 400-image pool, 200 test images), methods 1–3.

    Fine-tuning is left out: with 10 classes it trains 2.1× the images of faces per seed, which
    the 3-minute demo cannot afford (lesson 06 fine-tunes on these digits). The scans are 8×8
    pixels, so the small CNN gets 16 px instead of its usual 32: the same information for a
    quarter of the cost.
    """
    _use_every_core()
    result = compare_methods(task=digits_task(), ks=ks, seeds=seeds, backbone=backbone,
                             size=size, head_epochs=0, finetune_epochs=0,
                             scratch_epochs=scratch_epochs, scratch_size=scratch_size,
                             fine_tune=False, progress=progress)
    result.update(ks=list(ks), seeds=list(seeds), backbone=backbone, size=size,
                  scratch_epochs=scratch_epochs, scratch_size=scratch_size, test_images=200)
    return _report(result, Path(out_dir), "demo_digits", task="digits (10 classes)",
                   plot_title="handwritten digits, 10 classes: accuracy against labels per "
                              "class", unit="images")


def _use_every_core() -> None:
    # The demo runs alone: use every core this process may run on, unless the user said
    # otherwise (OMP_NUM_THREADS).
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                              else (os.cpu_count() or 1))


def _report(result: dict, out_dir: Path, stem: str, *, task: str, plot_title: str,
            unit: str) -> dict:
    """Save ``stem``.json (per-seed accuracy, mean, std, SE) and the plot; print the table."""
    result["summary"] = {m: {k: seed_stats(v) for k, v in by_k.items()}
                         for m, by_k in result["accuracy"].items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2))
    _plot(result["accuracy"], out_dir / f"{stem}_data_efficiency.png", plot_title)
    print(format_table(result, title=f"{task}, accuracy on {result['test_images']} test {unit} "
                                     f"(mean ± standard error = std/√n over "
                                     f"{len(result['seeds'])} seeds), k = labelled {unit} per "
                                     f"class"))
    print("\n".join(what_the_runs_show(result)))
    print(f"plot: {out_dir / f'{stem}_data_efficiency.png'}   numbers: {out_dir / f'{stem}.json'}")
    return result


def seed_stats(values: Sequence[float]) -> dict:
    """Mean, sample std (n − 1) and standard error std/√n; no spread from a single run."""
    a = np.asarray(values, dtype=float)
    std = float(a.std(ddof=1)) if len(a) > 1 else float("nan")
    return {"mean": float(a.mean()), "std": std, "se": std / np.sqrt(len(a)),
            "min": float(a.min()), "max": float(a.max()), "n": len(a)}


def format_table(result: dict, *, title: str | None = None) -> str:
    """The accuracy table as text: mean ± standard error over seeds, one column per k."""
    ks = result["ks"]
    width = max(len(m) for m in result["accuracy"]) + 2
    head = "method".ljust(width) + "".join(f"k={k}".center(15) for k in ks) + "s/run".rjust(8)
    title = title or (f"test accuracy (mean ± standard error = std/√n over "
                      f"{len(result['seeds'])} seeds), k = labelled examples per class")
    lines = [title, head, "-" * len(head)]
    for method, by_k in result["accuracy"].items():
        cells = ""
        for k in ks:
            s = seed_stats(by_k[k])
            spread = "n/a" if s["n"] < 2 else f"{s['se']:.3f}"
            cells += f"{s['mean']:.3f} ± {spread}".center(15)
        lines.append(method.ljust(width) + cells + f"{result['seconds_per_run'][method]:8.2f}")
    return "\n".join(lines)


def _short(method: str) -> str:
    """'ImageNet efficientnet_lite0 features + logistic regression' → 'features'."""
    name = method.split(" + ")[0]
    return name.split(" ", 2)[2] if name.startswith("ImageNet ") else name


def what_the_runs_show(result: dict) -> list[str]:
    """A few sentences computed from the runs: the best method at each k, whether its lead over
    the runner-up is more than 2 standard errors (runs are paired by seed, so the SE is that of
    the per-seed differences), and the widest spread over seeds."""
    acc, ks = result["accuracy"], result["ks"]
    best_at, leads = {}, []
    for k in ks:
        order = sorted(acc, key=lambda m: np.mean(acc[m][k]), reverse=True)
        best_at.setdefault(_short(order[0]), []).append(f"k={k}")
        if len(order) < 2:
            continue
        diff = seed_stats(np.asarray(acc[order[0]][k]) - np.asarray(acc[order[1]][k]))
        verdict = "one seed, no SE" if diff["n"] < 2 else \
            ("> 2 SE" if diff["mean"] > 2 * diff["se"] else "within 2 SE")
        se = "" if diff["n"] < 2 else f" ± {diff['se']:.3f}"
        leads.append(f"k={k} {diff['mean']:+.3f}{se} over {_short(order[1])} ({verdict})")
    text = "best: " + "; ".join(f"{m} at {', '.join(at)}" for m, at in best_at.items()) + "."
    if leads:
        text += " Its lead over the runner-up, paired by seed: " + "; ".join(leads) + "."
    spread = [(seed_stats(v)["std"], m, k) for m, by_k in acc.items() for k, v in by_k.items()
              if len(v) > 1]
    if spread:
        std, m, k = max(spread)
        s = seed_stats(acc[m][k])
        text += (f" Widest spread over seeds: {_short(m)} at k={k}, std {std:.3f} "
                 f"({s['min']:.3f} to {s['max']:.3f}).")
    return ["what the runs show:"] + textwrap.wrap(text, width=100, initial_indent="  ",
                                                   subsequent_indent="  ")


def _plot(acc: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # the demo runs headless
    import matplotlib.pyplot as plt

    from .viz import plot_data_efficiency

    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_data_efficiency(acc, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tlkit demo", description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 5, 10, 25])
    parser.add_argument("--digits-ks", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", default="results")
    parser.add_argument("--text-ks", type=int, nargs="+", default=[2, 5, 10, 25, 100])
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    run_demo(ks=args.ks, seeds=args.seeds, out_dir=args.out, progress=args.progress)
    print(f"faces: {time.perf_counter() - started:.0f} s\n")
    digits_started = time.perf_counter()
    run_digits_demo(ks=args.digits_ks, seeds=args.seeds, out_dir=args.out,
                    progress=args.progress)
    print(f"digits: {time.perf_counter() - digits_started:.0f} s\n")
    from .demo_text import run_text_demo

    text_started = time.perf_counter()
    run_text_demo(ks=args.text_ks, seeds=args.seeds, out_dir=args.out)
    print(f"text: {time.perf_counter() - text_started:.0f} s; total "
          f"{time.perf_counter() - started:.0f} s")
