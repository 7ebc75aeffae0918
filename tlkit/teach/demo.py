"""The main job (``make demo``): does transfer learning beat training from scratch, offline?

On ``faces`` (real LFW photographs in scikit-image) with 2, 5, 10 and 25 labelled images per
class, over several seeds, four ways to build a face / non-face classifier:

1. raw pixels + logistic regression            (traditional machine learning)
2. a small CNN trained from scratch            (deep learning without transfer)
3. ImageNet Lite0 features + logistic regression (feature extraction, frozen backbone)
4. ImageNet Lite0 fine-tuned                    (tlkit.fine_tune)

Every method sees the same images and is scored on the same held-out test half. It prints a
table (accuracy mean ± std over seeds, seconds per run) and saves a data-efficiency plot. Then
the same question for text (:mod:`tlkit.teach.demo_text`): sentiment of words never shown.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["run_demo"]

SIZE = 96  # input pixels for the ImageNet backbone: small enough for a 2-core CPU


def _tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the data set's transform once and stack: the demo never augments."""
    xs, ys = zip(*(data[i] for i in range(len(data))))
    return torch.stack(xs), torch.tensor(ys)


def _logistic(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
              test_y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def run_demo(*, ks=(2, 5, 10, 25), seeds=(0, 1, 2), out_dir: str | Path = "results",
             backbone: str = "efficientnet_lite0", finetune_epochs: int = 8,
             scratch_epochs: int = 40, progress: bool = False) -> dict:
    """Run the comparison; return ``{method: {k: [accuracy per seed]}}`` plus timings."""
    import tlkit

    torch.set_num_threads(max(1, torch.get_num_threads()))
    pretrained = tlkit.get_backbone(backbone, weights="imagenet")
    preprocess = pretrained.weights.transforms(size=SIZE)
    scratch_preprocess = tlkit.small_cnn(num_classes=2).weights.transforms()
    methods = ["raw pixels + logistic regression", "small CNN from scratch",
               f"ImageNet {backbone} features + logistic regression",
               f"ImageNet {backbone} fine-tuned"]
    acc = {m: {k: [] for k in ks} for m in methods}
    secs = {m: [] for m in methods}

    for seed in seeds:
        test = tlkit.load_dataset("faces", split="test", seed=seed)
        test_feats = tlkit.extract_features(pretrained, test.with_transform(preprocess),
                                            progress=progress)
        test_scratch = _tensors(test.with_transform(scratch_preprocess))
        test_big = _tensors(test.with_transform(preprocess))
        for k in ks:
            train = tlkit.load_dataset("faces", split="train", seed=seed, k_per_class=k)
            torch.manual_seed(seed)

            t = time.perf_counter()  # 1. raw pixels
            acc[methods[0]][k].append(_logistic(
                train.images.reshape(len(train), -1) / 255.0, np.asarray(train.targets),
                test.images.reshape(len(test), -1) / 255.0, np.asarray(test.targets)))
            secs[methods[0]].append(time.perf_counter() - t)

            t = time.perf_counter()  # 2. small CNN from scratch
            cnn = tlkit.small_cnn(num_classes=2)
            tlkit.fit(cnn, _tensors(train.with_transform(scratch_preprocess)),
                      epochs=scratch_epochs, lr=1e-3, optimizer="adam", batch_size=16,
                      seed=seed, progress=progress, device="cpu")
            acc[methods[1]][k].append(tlkit.evaluate(cnn, test_scratch, device="cpu")["acc"])
            secs[methods[1]].append(time.perf_counter() - t)

            t = time.perf_counter()  # 3. frozen ImageNet features + logistic regression
            feats = tlkit.extract_features(pretrained, train.with_transform(preprocess),
                                           progress=progress)
            acc[methods[2]][k].append(_logistic(feats.x.numpy(), feats.y.numpy(),
                                                test_feats.x.numpy(), test_feats.y.numpy()))
            secs[methods[2]].append(time.perf_counter() - t)

            t = time.perf_counter()  # 4. fine-tuning: head first, then everything
            model = tlkit.get_backbone(backbone, weights="imagenet", num_classes=2)
            tlkit.fine_tune(model, _tensors(train.with_transform(preprocess)),
                            freeze_epochs=finetune_epochs, epochs=finetune_epochs, lr=1e-3,
                            optimizer="adam", batch_size=16, seed=seed, progress=progress,
                            device="cpu")
            acc[methods[3]][k].append(tlkit.evaluate(model, test_big, device="cpu")["acc"])
            secs[methods[3]].append(time.perf_counter() - t)
            if progress:
                print(f"seed {seed} k={k}: " + ", ".join(
                    f"{m.split()[0]}…={acc[m][k][-1]:.2f}" for m in methods), flush=True)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"accuracy": acc, "seconds_per_run": {m: float(np.mean(s)) for m, s in secs.items()},
              "ks": list(ks), "seeds": list(seeds), "backbone": backbone, "size": SIZE}
    (out_dir / "demo.json").write_text(json.dumps(result, indent=2))
    _plot(acc, out_dir / "demo_data_efficiency.png")
    print(format_table(result))
    print(f"\nplot: {out_dir / 'demo_data_efficiency.png'}   numbers: {out_dir / 'demo.json'}")
    return result


def format_table(result: dict, *, title: str | None = None) -> str:
    """The accuracy table as text: mean ± std over seeds, one column per k."""
    ks = result["ks"]
    width = max(len(m) for m in result["accuracy"]) + 2
    head = "method".ljust(width) + "".join(f"k={k}".center(14) for k in ks) + "s/run".rjust(8)
    title = title or (f"faces, test accuracy (mean ± std over {len(result['seeds'])} seeds), "
                      f"k = labelled images per class")
    lines = [title, head, "-" * len(head)]
    for method, by_k in result["accuracy"].items():
        cells = "".join(f"{np.mean(by_k[k]):.3f} ± {np.std(by_k[k]):.3f}".center(14)
                        for k in ks)
        lines.append(method.ljust(width) + cells +
                     f"{result['seconds_per_run'][method]:8.2f}")
    return "\n".join(lines)


def _plot(acc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # the demo runs headless
    import matplotlib.pyplot as plt

    from .viz import plot_data_efficiency

    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_data_efficiency(acc, ax=ax)
    ax.set_title("faces vs. non-faces: accuracy against labels per class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tlkit demo", description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 5, 10, 25])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="results")
    parser.add_argument("--text-ks", type=int, nargs="+", default=[2, 5, 10, 25, 100])
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    run_demo(ks=args.ks, seeds=args.seeds, out_dir=args.out, progress=args.progress)
    print(f"images: {time.perf_counter() - started:.0f} s\n")
    from .demo_text import run_text_demo

    text_started = time.perf_counter()
    run_text_demo(ks=args.text_ks, seeds=args.seeds, out_dir=args.out)
    print(f"\nplot: {Path(args.out) / 'demo_text_data_efficiency.png'}   numbers: "
          f"{Path(args.out) / 'demo_text.json'}")
    print(f"text: {time.perf_counter() - text_started:.0f} s; total "
          f"{time.perf_counter() - started:.0f} s")
