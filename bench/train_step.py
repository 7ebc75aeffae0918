"""P2: training-step throughput of ``tlkit.fit`` vs. the PyTorch tutorial's plain loop.

What is measured
----------------
The cost of ``tlkit.fit``'s conveniences (seeding, the tqdm bar, the loss/accuracy
bookkeeping with ``.item()``, the NaN check, the ``on_batch`` hook, parameter groups, the
autocast context) per training step, against the loop of the PyTorch transfer-learning
tutorial::

    for inputs, labels in loader:
        optimizer.zero_grad(); outputs = model(inputs); loss = criterion(outputs, labels)
        loss.backward(); optimizer.step()

Same model (ImageNet EfficientNet-Lite0, fully trainable, batch norm training, two copies of
one initialisation), same optimizer (SGD lr 1e-3, momentum 0.9), same batch size, same data:
``--steps`` x ``--batch-size`` real ``textures`` patches, transformed once into an in-memory
tensor (the 144 training patches repeated as needed), so image decoding is not measured. Both
sides iterate a shuffled ``DataLoader`` over that tensor (``tlkit.fit`` is given the tuple
``(x, y)``), on the CPU with PyTorch's default thread count.

One *round* is one epoch of exactly ``--steps`` batches: for the plain side, build the
loader and the optimizer, then the loop; for tlkit, one ``tlkit.fit(..., epochs=1,
progress=False, device="cpu")`` call — each timed whole, setup included. After an untimed
warm-up round per side, the rounds alternate plain / tlkit (ABBA order, so neither side always
goes first) ``--rounds`` times each; the median throughput (images/s) of each side is
reported, plus the median steady-state step time (per-step timestamps; the plain loop stamps
after ``optimizer.step()``, tlkit via its ``on_batch`` callback).

With CUDA (``torch.cuda.is_available()``) it also measures ResNet-50 (random init) training
throughput at 224 px, batch 64, in bfloat16 autocast + channels_last vs. float32 (PyTorch's
default float32 settings), synchronising around every timed round, and prints
``P2cuda bf16_channels_last_vs_fp32=<ratio>`` before the last line.

The last line is ``P2 ratio=<tlkit throughput / plain throughput>``.

Run: ``.venv/bin/python bench/train_step.py [--size 112] [--batch-size 32] [--steps 6] [--rounds 7]``
"""
from __future__ import annotations

import argparse
import copy
import random
import statistics
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


def plain_round(model: nn.Module, dataset, args, seed: int) -> dict:
    """The tutorial's loop over one epoch of ``args.steps`` batches."""
    stamps = []
    start = time.perf_counter()
    stamps.append(start)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    model.train()
    for inputs, labels in loader:
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": len(stamps) - 1, "stamps": stamps}


def tlkit_round(model: nn.Module, data: tuple, args, seed: int) -> dict:
    """One ``tlkit.fit`` epoch over the same ``args.steps`` batches."""
    stamps = []
    start = time.perf_counter()
    stamps.append(start)
    tlkit.fit(model, data, epochs=1, lr=args.lr, momentum=args.momentum,
              batch_size=args.batch_size, seed=seed, progress=False, device="cpu",
              on_batch=lambda epoch, step, loss: stamps.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": len(stamps) - 1, "stamps": stamps}


def steady_step(runs: list[dict]) -> float:
    """Median time between consecutive step ends (the first step of a round is excluded)."""
    gaps = [b - a for run in runs for a, b in zip(run["stamps"][1:], run["stamps"][2:])]
    return statistics.median(gaps) if gaps else float("nan")


def first_step(runs: list[dict]) -> float:
    """Median time from the start of a round to the end of its first step (setup included)."""
    return statistics.median(run["stamps"][1] - run["stamps"][0] for run in runs)


def cuda_resnet50(args, device: str = "cuda") -> float | None:
    """ResNet-50 training img/s, bf16 autocast + channels_last vs. float32; returns the ratio.

    ``device`` is "cuda" in the benchmark (``device="cpu"`` only dry-runs the code path).
    """
    import torchvision

    device = torch.device(device)
    on_cuda = device.type == "cuda"
    if on_cuda and not torch.cuda.is_bf16_supported():
        print("P2cuda: this GPU has no bfloat16 support; skipped")
        return None

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize(device)

    torch.backends.cudnn.benchmark = True  # both sides: autotuned convolution kernels
    batch, size = args.cuda_batch_size, args.cuda_size
    name = torch.cuda.get_device_name(device) if on_cuda else "CPU dry run"
    print(f"CUDA: {name}; ResNet-50 (weights=None), {size} px, batch "
          f"{batch}, SGD lr {args.lr} momentum {args.momentum}; {args.cuda_rounds} interleaved "
          f"rounds of {args.cuda_steps} steps after {args.cuda_warmup} warm-up steps; fp32 = "
          f"PyTorch's float32 defaults: matmul precision {torch.get_float32_matmul_precision()!r}, cuDNN TF32 "
          f"{getattr(torch.backends.cudnn, 'allow_tf32', '?')}")

    torch.manual_seed(args.seed)
    base = torchvision.models.resnet50(weights=None)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)

    sides = {}
    for label, fast in (("fp32", False), ("bf16_channels_last", True)):
        model = copy.deepcopy(base).to(device)
        inputs = x
        if fast:
            model = model.to(memory_format=torch.channels_last)
            inputs = x.contiguous(memory_format=torch.channels_last)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        sides[label] = (model, opt, inputs, fast)

    def run(label: str, steps: int) -> float:
        model, opt, inputs, fast = sides[label]
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                loss = nn.functional.cross_entropy(model(inputs), y)
            loss.backward()
            opt.step()
        sync()  # wait for the queued kernels: the GPU runs asynchronously
        return steps * batch / (time.perf_counter() - start)

    for label in sides:  # warm-up: cuDNN autotuning, allocator, lazy optimizer state
        run(label, args.cuda_warmup)
    rates: dict[str, list[float]] = {label: [] for label in sides}
    for r in range(args.cuda_rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for label in order:
            rates[label].append(run(label, args.cuda_steps))
    fp32 = statistics.median(rates["fp32"])
    fast = statistics.median(rates["bf16_channels_last"])
    print(f"CUDA ResNet-50 training: fp32 {fp32:.0f} img/s, bf16 autocast + channels_last "
          f"{fast:.0f} img/s (rounds: {[round(v) for v in rates['fp32']]} / "
          f"{[round(v) for v in rates['bf16_channels_last']]})" + (
              f"; peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
              if on_cuda else ""))
    del sides
    if on_cuda:
        torch.cuda.empty_cache()
    return fast / fp32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=112, help="input crop in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="batches per round (one epoch)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per side")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cuda", action="store_true", help="skip the ResNet-50 GPU part")
    parser.add_argument("--cuda-batch-size", type=int, default=64)
    parser.add_argument("--cuda-size", type=int, default=224)
    parser.add_argument("--cuda-steps", type=int, default=30)
    parser.add_argument("--cuda-warmup", type=int, default=15)
    parser.add_argument("--cuda-rounds", type=int, default=5)
    args = parser.parse_args()

    seed_everything(args.seed)
    warnings.filterwarnings("ignore", category=tlkit.CPUTrainingWarning)

    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", num_classes=3,
                               progress=False)
    tlkit.unfreeze(model)  # every parameter trains; batch norm in training mode
    models = {"plain": model, "tlkit": copy.deepcopy(model)}

    # Real images, transformed once: data loading is not what is measured.
    train = tlkit.load_dataset("textures", split="train",
                               transform=model.weights.transforms(size=args.size))
    images = torch.stack([train[i][0] for i in range(len(train))])
    labels = torch.tensor(train.targets)
    n = args.steps * args.batch_size
    index = torch.arange(n) % len(train)
    x, y = images[index].contiguous(), labels[index].contiguous()
    dataset = torch.utils.data.TensorDataset(x, y)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"efficientnet_lite0 fully trainable "
          f"({sum(p.numel() for p in model.parameters()):,} parameters), {args.size} px, "
          f"batch {args.batch_size}, {args.steps} steps per round, {args.rounds} interleaved "
          f"rounds per side after 1 warm-up round each; {n} in-memory textures images")

    run = {"plain": lambda seed: plain_round(models["plain"], dataset, args, seed),
           "tlkit": lambda seed: tlkit_round(models["tlkit"], (x, y), args, seed)}
    for side in ("plain", "tlkit"):
        run[side](args.seed)  # warm-up (untimed)

    results: dict[str, list[dict]] = {"plain": [], "tlkit": []}
    for r in range(args.rounds):
        order = ("plain", "tlkit") if r % 2 == 0 else ("tlkit", "plain")
        line = []
        for side in order:
            res = run[side](args.seed + 1 + r)
            assert res["steps"] == args.steps, res["steps"]
            results[side].append(res)
            line.append(f"{side} {n / res['seconds']:6.1f} img/s")
        print(f"round {r + 1}: " + ", ".join(line), flush=True)

    thr = {side: statistics.median(n / res["seconds"] for res in runs)
           for side, runs in results.items()}
    step = {side: steady_step(runs) for side, runs in results.items()}
    first = {side: first_step(runs) for side, runs in results.items()}
    ratio = thr["tlkit"] / thr["plain"]
    # Each round's two runs are adjacent in time: their ratio cancels slow drifts in load.
    paired = statistics.median(p["seconds"] / t["seconds"]
                               for p, t in zip(results["plain"], results["tlkit"]))
    for side in ("plain", "tlkit"):
        print(f"{side:5s}: median {thr[side]:6.1f} img/s per epoch (setup included); "
              f"steady-state step {step[side] * 1000:6.1f} ms = "
              f"{args.batch_size / step[side]:6.1f} img/s; first step incl. setup "
              f"{first[side] * 1000:6.1f} ms")
    print(f"tlkit.fit / plain loop: {ratio:.2f}x per epoch (medians), {paired:.2f}x median of "
          f"per-round pairs, {step['plain'] / step['tlkit']:.2f}x steady-state (goal >= 1.0)")

    if torch.cuda.is_available() and not args.no_cuda:
        try:
            cuda_ratio = cuda_resnet50(args)
        except RuntimeError as err:  # e.g. out of memory on a small GPU: report, don't crash
            print(f"P2cuda: failed: {err}")
            cuda_ratio = None
        if cuda_ratio is not None:
            print(f"P2cuda bf16_channels_last_vs_fp32={cuda_ratio:.2f}")
    print(f"P2 ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
