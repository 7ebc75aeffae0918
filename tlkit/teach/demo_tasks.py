"""The image tasks of ``make demo`` and the four methods compared on each (see :mod:`.demo`).

Every split is fixed and ``seed`` only chooses the few labelled images (tlkit.few_shot), so the
whole pool and the test set are preprocessed, and run through the frozen backbone, once; each
seed and k then indexes those tensors. Results are the same as preparing every run afresh.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..data.images import ArrayImages

__all__ = ["Task", "faces_task", "digits_task", "compare_methods"]


@dataclass(frozen=True)
class Task:
    """A fixed labelled pool (few-shot draws come from it) and a fixed test set."""
    name: str
    pool: ArrayImages
    test: ArrayImages

    @property
    def num_classes(self) -> int:
        return len(self.pool.classes)


def faces_task() -> Task:
    """LFW faces vs. non-faces (scikit-image): 100 pool images, 100 test images, 2 classes."""
    import tlkit

    return Task("faces", tlkit.load_dataset("faces", split="train"),
                tlkit.load_dataset("faces", split="test"))


def digits_task() -> Task:
    """scikit-learn's handwritten digits, 10 classes, built as lesson 06 builds them: 8×8 scans
    with values 0..16; one fixed permutation, test = the first 200, pool = the next 400."""
    from sklearn.datasets import load_digits

    import tlkit

    scans = load_digits()  # ships inside scikit-learn: offline
    digits = tlkit.ArrayImages(np.round(scans.images * 255 / 16).astype(np.uint8),
                               targets=scans.target.tolist(),
                               classes=[str(d) for d in range(10)], name="digits")
    order = np.random.default_rng(0).permutation(len(digits))
    return Task("digits", digits.subset(order[200:600]), digits.subset(order[:200]))


def _chosen(pool, *, k: int, seed: int) -> np.ndarray:
    """Pool indices of ``tlkit.few_shot(pool, k_per_class=k, seed=seed)``.

    few_shot itself picks them (the rule stays in one place): it runs on a stand-in pool whose
    "images" are the indices written as two bytes, with the pool's own labels.
    """
    import tlkit

    n = np.arange(len(pool))
    tags = np.stack([n % 256, n // 256], axis=-1).astype(np.uint8)[:, None, :]
    stand_in = tlkit.ArrayImages(tags, targets=list(pool.targets), classes=pool.classes)
    picked = tlkit.few_shot(stand_in, k_per_class=k, seed=seed).images[:, 0, :].astype(int)
    return picked[:, 0] + 256 * picked[:, 1]


def _tensors(data) -> torch.Tensor:
    """Apply the data set's transform once and stack: the demo never augments."""
    return torch.stack([data[i][0] for i in range(len(data))])


def _logistic(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
              test_y: np.ndarray) -> float:
    """The lessons' linear probe: logistic regression on the values as they are.

    No ``StandardScaler``: fitted on 2 images per class it divides each of Lite0's 1,280
    features by a standard deviation estimated from 4 numbers, which blows up the ones that
    barely varied among those 4 (faces, k = 2, 10 seeds: 0.804 ± 0.038 with it, 0.978 ± 0.006
    without; bench/RESULTS.md).
    """
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def method_names(backbone: str) -> list[str]:
    """The four methods' names, in the order of the table."""
    return ["raw pixels + logistic regression", "small CNN from scratch",
            f"ImageNet {backbone} features + logistic regression",
            f"ImageNet {backbone} fine-tuned"]


def compare_methods(*, task: Task, ks: Sequence[int], seeds: Sequence[int], backbone: str,
                    size: int, finetune_epochs: int, head_epochs: int, scratch_epochs: int,
                    scratch_size: int | None = None, fine_tune: bool = True,
                    progress: bool = False) -> dict:
    """``{"accuracy": {method: {k: [per seed]}}, "seconds_per_run": {method: s}}`` on ``task``.

    ``fine_tune=False`` leaves method 4 out (its cost grows with the training images);
    ``scratch_size`` is the small CNN's input size (default: its own 32 px). The seeds run in
    parallel, one process per core (see ``_map_seeds``).
    """
    import tlkit

    pretrained = tlkit.get_backbone(backbone, weights="imagenet")
    preprocess = pretrained.weights.transforms(size=size)
    scratch_weights = tlkit.small_cnn(num_classes=task.num_classes).weights
    scratch_preprocess = scratch_weights.transforms(size=scratch_size) if scratch_size \
        else scratch_weights.transforms()
    methods = method_names(backbone)[:4 if fine_tune else 3]

    # Once per task: the seeds only choose which pool images train.
    t = time.perf_counter()
    d = {"task": task, "ks": list(ks), "backbone": backbone, "methods": methods,
         "head_epochs": head_epochs, "finetune_epochs": finetune_epochs,
         "scratch_epochs": scratch_epochs, "progress": progress}
    d["pool_y"], d["test_y"] = (torch.as_tensor(list(x.targets)) for x in (task.pool, task.test))
    d["pool_raw"], d["test_raw"] = (x.images.reshape(len(x), -1) / 255.0
                                    for x in (task.pool, task.test))
    d["pool_small"], d["test_small"] = (_tensors(x.with_transform(scratch_preprocess))
                                        for x in (task.pool, task.test))
    if fine_tune:
        d["pool_big"], d["test_big"] = (_tensors(x.with_transform(preprocess))
                                        for x in (task.pool, task.test))
    # cache=False: the demo's time should not depend on what an earlier run left on disk.
    d["pool_feats"], d["test_feats"] = (
        tlkit.extract_features(pretrained, x.with_transform(preprocess), cache=False,
                               progress=progress).x for x in (task.pool, task.test))
    prepared = time.perf_counter() - t

    runs = _map_seeds(d, list(seeds))
    acc = {m: {k: [run[0][m][k] for run in runs] for k in ks} for m in methods}
    secs = {m: [s for run in runs for s in run[1][m]] for m in methods}
    return {"accuracy": acc, "seconds_per_run": {m: float(np.mean(s)) for m, s in secs.items()},
            "seconds_prepare": prepared}


_PREPARED: dict = {}  # what the forked workers read: set just before they start


def _map_seeds(prepared: dict, seeds: list[int]) -> list:
    """``_one_seed`` for every seed, one process per core on Linux.

    One thread in each of N processes beats N threads in one: the batches are small (16
    images), so threads wait on each other, and on a busy machine they spin. Forked workers
    share the prepared tensors (copy-on-write). Elsewhere (macOS, Windows: no safe fork with
    torch loaded) the seeds run here, one after another.
    """
    import multiprocessing
    import os
    import sys
    from concurrent.futures import ProcessPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    workers = min(cores, len(seeds))
    _PREPARED.clear()
    _PREPARED.update(prepared)
    try:
        if workers < 2 or not sys.platform.startswith("linux"):
            return [_one_seed(seed) for seed in seeds]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_worker_init) as pool:
            return list(pool.map(_one_seed, seeds))
    finally:
        _PREPARED.clear()


def _worker_init() -> None:
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    torch.set_num_threads(1)
    threadpool_limits(1)  # NumPy's BLAS too (logistic regression): one thread per process


def _one_seed(seed: int) -> tuple[dict, dict]:
    """Every method at every k for one seed: ``({method: {k: acc}}, {method: [seconds]})``."""
    import warnings

    import tlkit

    # The demo knows it trains on the CPU and how long that takes: no advice to use a GPU.
    warnings.filterwarnings("ignore", category=tlkit.CPUTrainingWarning)
    d = _PREPARED
    task, methods, backbone = d["task"], d["methods"], d["backbone"]
    acc = {m: {} for m in methods}
    secs = {m: [] for m in methods}
    for k in d["ks"]:
        idx = torch.as_tensor(_chosen(task.pool, k=k, seed=seed))
        y = d["pool_y"][idx]
        torch.manual_seed(seed)

        t = time.perf_counter()  # 1. raw pixels
        acc[methods[0]][k] = _logistic(d["pool_raw"][idx.numpy()], y.numpy(), d["test_raw"],
                                       d["test_y"].numpy())
        secs[methods[0]].append(time.perf_counter() - t)

        t = time.perf_counter()  # 2. small CNN from scratch
        cnn = tlkit.small_cnn(num_classes=task.num_classes)
        tlkit.fit(cnn, (d["pool_small"][idx], y), epochs=d["scratch_epochs"], lr=1e-3,
                  optimizer="adam", batch_size=16, seed=seed, progress=False, device="cpu")
        acc[methods[1]][k] = tlkit.evaluate(cnn, (d["test_small"], d["test_y"]),
                                            device="cpu")["acc"]
        secs[methods[1]].append(time.perf_counter() - t)

        t = time.perf_counter()  # 3. frozen ImageNet features + logistic regression
        acc[methods[2]][k] = _logistic(d["pool_feats"][idx].numpy(), y.numpy(),
                                       d["test_feats"].numpy(), d["test_y"].numpy())
        secs[methods[2]].append(time.perf_counter() - t)

        if len(methods) > 3:
            t = time.perf_counter()  # 4. fine-tuning: head first, then everything
            model = tlkit.get_backbone(backbone, weights="imagenet",
                                       num_classes=task.num_classes)
            # Phase 1 of fine_tune (frozen blocks, batch norm in inference mode, no dropout in
            # Lite0) is the head on fixed features: train it on the features computed once
            # instead of running the frozen blocks again every epoch. Same batches, same seed,
            # the same weights to the last bit.
            tlkit.fit(model.head, (d["pool_feats"][idx], y), epochs=d["head_epochs"], lr=1e-3,
                      optimizer="adam", batch_size=16, seed=seed, progress=False, device="cpu")
            tlkit.fine_tune(model, (d["pool_big"][idx], y), freeze_epochs=0,
                            epochs=d["finetune_epochs"], lr=1e-3, optimizer="adam",
                            batch_size=16, seed=seed, progress=False, device="cpu")
            acc[methods[3]][k] = tlkit.evaluate(model, (d["test_big"], d["test_y"]),
                                                device="cpu")["acc"]
            secs[methods[3]].append(time.perf_counter() - t)
        if d["progress"]:
            print(f"{task.name} seed {seed} k={k}: " + ", ".join(
                f"{m.split()[0]}…={acc[m][k]:.2f}" for m in methods), flush=True)
    return acc, secs
