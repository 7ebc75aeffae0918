"""P1: training a head on cached features vs. recomputing the frozen backbone every epoch.

What is measured
----------------
Two ways to train the same fixed-feature-extractor model (ImageNet EfficientNet-Lite0, body
frozen, a new linear head) on the same images for the same E epochs:

* **cached** (tlkit, lesson 04): ``tlkit.extract_features`` runs the body once over the
  training images into a *cold* cache (a fresh temporary ``cache_dir``: hashing the weights,
  decoding + transforming the images, the forward passes and writing the file are all timed),
  then ``tlkit.fit`` trains the linear head for E epochs on the cached ``(x, y)`` tensors.
  The extraction runs at the training batch size (32, not ``extract_features``' default 64),
  so the body does the same convolutions per batch on both sides.
* **recompute** (the PyTorch transfer-learning tutorial's "ConvNet as fixed feature
  extractor"): ``requires_grad=False`` on the body, an optimizer over the head only, and for
  every epoch, for every batch: transform the images, forward through the frozen body and the
  head, backward, step. The body is paid E times.

Both sides do mathematically the same training, so their heads (and test accuracies) should
agree: the same head initialisation (seeded, then copied), the same batches in the same order
(the loop below shuffles with the generator seeds ``tlkit.fit`` uses, ``seed * 100_003 +
epoch``, and like ``fit`` makes one throw-away iterator first; see the comment there), SGD lr 1e-3 momentum 0.9, batch 32, mean cross-entropy, no augmentation, and the
body in eval mode on both sides (batch-norm running statistics frozen). The tutorial's
StepLR is left out on both sides (``tlkit.fit`` has no step schedule); the tutorial's
``model.train()`` would also put the frozen body's batch norm in training mode, which changes
the features every batch and makes caching impossible — we keep it in eval mode, which is what
a fixed feature extractor means. Data loading is in-process (``num_workers=0``) on both sides.
The per-step losses of the two sides are compared to prove they saw the same batches.

Timing: one untimed warm-up epoch of each side, then ``--repeats`` interleaved
rounds (cached, recompute, then recompute, cached, ...; a fresh cold cache each time); the
medians are reported. Test accuracy is measured once per side, untimed, on the same test
split. The machine may be shared, so read the per-round times too.

The last line is::

    P1 ratio=<recompute_seconds / cached_seconds> epochs=<E> acc_cached=<a> acc_recompute=<b>

Run: ``.venv/bin/python bench/feature_cache.py [--epochs 25] [--size 128] [--repeats 3]``
"""
from __future__ import annotations

import argparse
import copy
import platform
import random
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import nn

import tlkit


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_cached(model: tlkit.Backbone, train, head0: nn.Module, args) -> dict:
    """Cold-cache extraction + tlkit.fit on the cached features; returns the timed result."""
    cache_dir = tempfile.mkdtemp(prefix="tlkit-bench-cache-")
    try:
        head = copy.deepcopy(head0)
        losses: list[float] = []
        start = time.perf_counter()
        feats = tlkit.extract_features(model, train, batch_size=args.batch_size,
                                       cache_dir=cache_dir, progress=False, device="cpu")
        extracted = time.perf_counter()
        tlkit.fit(head, (feats.x, feats.y), epochs=args.epochs, lr=args.lr,
                  momentum=args.momentum, batch_size=args.batch_size, seed=args.seed,
                  device="cpu", progress=False,
                  on_batch=lambda epoch, step, loss: losses.append(loss))
        end = time.perf_counter()
        assert not feats.from_cache, "the cache was supposed to be cold"
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {"seconds": end - start, "extract_seconds": extracted - start,
            "head_seconds": end - extracted, "head": head, "losses": losses}


def run_recompute(model: tlkit.Backbone, train, head0: nn.Module, args) -> dict:
    """The tutorial's fixed-feature-extractor loop: the frozen body runs in every epoch."""
    model.head = copy.deepcopy(head0)
    for p in model.blocks.parameters():
        p.requires_grad = False
    for p in model.neck.parameters():
        p.requires_grad = False
    criterion = nn.CrossEntropyLoss()
    # Only the head's parameters are optimised (tutorial: optim.SGD(model_conv.fc.parameters())).
    optimizer = torch.optim.SGD(model.head.parameters(), lr=args.lr, momentum=args.momentum)
    losses: list[float] = []
    epoch_seconds: list[float] = []
    start = time.perf_counter()
    for epoch in range(args.epochs):
        # The same shuffling as tlkit.fit: one generator per epoch, seeded from (seed, epoch).
        generator = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            train, batch_size=args.batch_size, shuffle=True, generator=generator,
            num_workers=0, drop_last=len(train) > args.batch_size
            and len(train) % args.batch_size == 1)
        # tlkit.fit wraps its loader in tqdm.auto, whose constructor calls iter(loader) once
        # and throws that iterator away; that draws one number from the generator. Do the same
        # (free with num_workers=0) so that both sides see exactly the same batches.
        iter(loader)
        model.eval()  # frozen body: batch norm uses its ImageNet running statistics
        running_loss = 0.0
        epoch_start = time.perf_counter()
        for inputs, labels in loader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            running_loss += loss.item() * inputs.size(0)
        epoch_seconds.append(time.perf_counter() - epoch_start)
    end = time.perf_counter()
    return {"seconds": end - start, "epoch_seconds": epoch_seconds,
            "head": copy.deepcopy(model.head), "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25, help="E (default 25, the tutorial's)")
    parser.add_argument("--dataset", default="textures", choices=["textures", "faces"])
    parser.add_argument("--size", type=int, default=128, help="input crop in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved timed rounds per side (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    seed_everything(args.seed)
    warnings.filterwarnings("ignore", category=tlkit.CPUTrainingWarning)

    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", progress=False)
    tlkit.freeze(model)  # requires_grad=False on every block (and the neck)
    model.eval()
    preprocess = model.weights.transforms(size=args.size)  # no augmentation on either side
    train = tlkit.load_dataset(args.dataset, split="train", transform=preprocess,
                               seed=args.seed)
    test = tlkit.load_dataset(args.dataset, split="test", transform=preprocess, seed=args.seed)
    num_classes = len(train.classes)

    # One head initialisation, copied to both sides.
    torch.manual_seed(args.seed)
    head0 = nn.Linear(model.num_features, num_classes)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print(f"data: {args.dataset} {len(train)} train / {len(test)} test images, "
          f"{num_classes} classes, {args.size} px; model: efficientnet_lite0 frozen + "
          f"Linear({model.num_features}, {num_classes}); SGD lr {args.lr} momentum "
          f"{args.momentum}, batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}")

    # Warm-up (untimed): one epoch of each side, so that first-call costs (oneDNN kernels for
    # each batch shape, allocator, lazy imports) land in neither side's timing.
    warm = argparse.Namespace(**{**vars(args), "epochs": 1})
    run_cached(model, train, head0, warm)
    run_recompute(model, train, head0, warm)

    cached_runs, recompute_runs = [], []
    for r in range(args.repeats):
        order = ("cached", "recompute") if r % 2 == 0 else ("recompute", "cached")
        for side in order:
            if side == "cached":
                res = run_cached(model, train, head0, args)
                cached_runs.append(res)
                print(f"round {r + 1} cached:    {res['seconds']:7.2f} s  (cold extraction "
                      f"{res['extract_seconds']:.2f} s + head, {args.epochs} epochs, "
                      f"{res['head_seconds']:.2f} s)", flush=True)
            else:
                res = run_recompute(model, train, head0, args)
                recompute_runs.append(res)
                ep = res["epoch_seconds"]
                print(f"round {r + 1} recompute: {res['seconds']:7.2f} s  (epochs: median "
                      f"{statistics.median(ep):.2f} s, min {min(ep):.2f}, max {max(ep):.2f})",
                      flush=True)

    cached_s = statistics.median(r["seconds"] for r in cached_runs)
    recompute_s = statistics.median(r["seconds"] for r in recompute_runs)
    ratio = recompute_s / cached_s

    # Same training on both sides? Compare the per-step losses and the final heads.
    c, rc = cached_runs[0], recompute_runs[0]
    loss_diff = max(abs(a - b) for a, b in zip(c["losses"], rc["losses"]))
    w_diff = max((a - b).abs().max().item() for a, b in
                 zip(c["head"].state_dict().values(), rc["head"].state_dict().values()))
    repeat_diff = max(
        max((a - b).abs().max().item() for a, b in
            zip(runs[0]["head"].state_dict().values(), run["head"].state_dict().values()))
        for runs in (cached_runs, recompute_runs) for run in runs)

    # Test accuracy (untimed): cached head on cached test features, recompute head end to end.
    with tempfile.TemporaryDirectory(prefix="tlkit-bench-cache-") as tmp:
        test_feats = tlkit.extract_features(model, test, batch_size=args.batch_size,
                                            cache_dir=tmp, progress=False, device="cpu")
    acc_cached = tlkit.evaluate(c["head"], (test_feats.x, test_feats.y), device="cpu")["acc"]
    model.head = copy.deepcopy(rc["head"])
    acc_recompute = tlkit.evaluate(model, test, device="cpu")["acc"]

    print(f"steps per side: {len(c['losses'])} / {len(rc['losses'])}; max |loss difference| "
          f"per step {loss_diff:.2e}; max |head weight difference| {w_diff:.2e}; "
          f"across repeats {repeat_diff:.2e}")
    print(f"median cached    {cached_s:7.2f} s  (extraction "
          f"{statistics.median(r['extract_seconds'] for r in cached_runs):.2f} s, head "
          f"{statistics.median(r['head_seconds'] for r in cached_runs):.2f} s)")
    # A load-robust cross-check: the fastest-typical epoch times E, against the fastest cached
    # round (shared-machine noise only ever adds time).
    all_epochs = [t for run in recompute_runs for t in run["epoch_seconds"]]
    typical = statistics.median(all_epochs) * args.epochs
    print(f"median recompute {recompute_s:7.2f} s  (median epoch x E = {typical:.2f} s; "
          f"cross-check: {typical:.2f} / fastest cached {min(r['seconds'] for r in cached_runs):.2f}"
          f" = {typical / min(r['seconds'] for r in cached_runs):.1f}x)")
    print(f"speed-up {ratio:.1f}x (goal >= 0.9*E = {0.9 * args.epochs:.1f}: "
          f"{'met' if ratio >= 0.9 * args.epochs else 'NOT met'}); test accuracy cached "
          f"{acc_cached:.3f} vs recompute {acc_recompute:.3f} on {len(test)} images "
          f"({'equal within 1 point' if abs(acc_cached - acc_recompute) <= 0.01 else 'DIFFERENT'})")
    print(f"P1 ratio={ratio:.1f} epochs={args.epochs} acc_cached={acc_cached:.3f} "
          f"acc_recompute={acc_recompute:.3f}")


if __name__ == "__main__":
    main()
