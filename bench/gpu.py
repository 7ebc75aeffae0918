"""P2cuda and P3: ResNet-50 training speed on one CUDA GPU (random weights, no internet).

What is measured
----------------
**P2cuda** — images/s of ``tlkit.fit`` (its CUDA defaults: bfloat16 autocast, or float16 with a
GradScaler on GPUs without native bf16, and channels_last for the model and every batch) against
the PyTorch transfer-learning tutorial's plain float32 loop::

    model.train()
    for x, y in loader:
        x, y = x.to(dev), y.to(dev)
        opt.zero_grad(); out = model(x); loss = criterion(out, y); loss.backward(); opt.step()

Both sides: deep copies of one random ``tlkit.get_backbone("resnet50", weights=None)`` (1000
classes), SGD lr 1e-3 momentum 0.9, the same batch size (default 128) at 224 px, and the same
synthetic data: a pool of random images, already normalised float32 tensors in CPU memory,
served by a shuffled ``DataLoader`` with the same ``--p2-workers`` workers and pinned memory on
both sides (``tlkit.fit`` builds its own loader with ``pin_memory=True`` on a GPU). The plain
loop runs with PyTorch's default float32 settings (cuDNN TF32 on, matmul TF32 off,
``cudnn.benchmark`` off): this script changes none of them for P2 and prints their values.
Timing: one epoch of ``warm-up + timed`` steps per round; ``torch.cuda.synchronize()`` at the
end of the last warm-up step and of the last step (for ``fit`` inside its ``on_batch``
callback, so fit's argument checks, guards, loader start-up and end-of-epoch checks are not
counted). Rounds alternate the order (ABBA); medians are reported. ratio = fit / plain.
Two reference lines: the plain loop on one batch already on the GPU (no loader), and
``fit`` with ``num_workers=0`` (batches made in the main process; its default on a CPU).

**P3** — ResNet-50 training img/s in the best configuration: bf16 autocast + channels_last,
``cudnn.benchmark=True``, batch 256 (halved until it fits), a synthetic batch already on the
GPU. Then the real input pipeline: ``--jpegs`` JPEG files (256–400 px crops of scikit-image's
bundled photos, written to a temporary folder at start) decoded and augmented
(RandomResizedCrop 224 + horizontal flip) in ``DataLoader`` workers (``--workers``, default the
CPU count; pinned memory; persistent workers), the same training step. ``--decode cpu``
(default): ``torchvision.io.decode_jpeg`` + v2 transforms on uint8 tensors in the workers,
normalisation on the GPU; ``pil``: the tutorial's PIL + ToTensor + Normalize in the workers;
``gpu``: the workers only read the files, nvJPEG decodes the batch on the GPU
(``decode_jpeg(device="cuda")``) and the crops are made there. pipeline_fraction = pipeline
img/s / synthetic img/s. ``--compile``: also ``torch.compile`` the model and measure it
(compile time excluded from img/s and reported), on its own line.

A batch that does not fit: ``torch.cuda.OutOfMemoryError`` is caught, the batch halved, the
cache emptied, and the measurement retried (a line says so).

Figures go to stdout and to a JSON file (``--out``; default ``$TLKIT_GPU_RESULTS`` or
``bench/gpu-results.json``) with the GPU name, torch version and date. The last two lines::

    P2cuda ratio=<fit / plain>
    P3 img_s=<synthetic> pipeline_fraction=<pipeline / synthetic>

Goals: ratio >= 2.5 (NVIDIA's A100 AMP vs TF32 ratio is 2.63); P3 >= 2,470 img/s (NVIDIA
DeepLearningExamples, 1x A100 AMP), 4,000 on H100/H200; pipeline_fraction >= 0.9.

Without CUDA it says so and exits 0; ``--cpu-smoke`` runs every part on the CPU with tiny sizes
(32 px, batch 4, a few steps and JPEGs) to check the script end to end (figures meaningless).

Run: ``.venv/bin/python bench/gpu.py [--compile] [--decode cpu|pil|gpu] [--out FILE]``
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import datetime
import gc
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
from torch import nn

import tlkit

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
NO_CUDA = "bench/gpu.py needs a CUDA GPU (none found)"
_START = time.perf_counter()


def at() -> str:
    """Seconds since the script started, for the section headers (the budget is 8 minutes)."""
    return f"[{time.perf_counter() - _START:5.1f} s]"


# --- small helpers -------------------------------------------------------------------------

def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def sync(device: torch.device) -> None:
    """Wait for every kernel queued on the GPU: CUDA runs asynchronously to the host."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def precision_flags() -> dict:
    """The float32 / TF32 switches as they are now (read only; nothing is set)."""
    b = torch.backends
    flags = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, read in [
                ("torch.backends.cuda.matmul.allow_tf32", lambda: b.cuda.matmul.allow_tf32),
                ("torch.backends.cudnn.allow_tf32", lambda: b.cudnn.allow_tf32),
                ("torch.backends.cudnn.benchmark", lambda: b.cudnn.benchmark),
                ("torch.get_float32_matmul_precision()", torch.get_float32_matmul_precision),
                # torch >= 2.9 also has the fp32_precision API ("tf32" / "ieee" / "none")
                ("torch.backends.cuda.matmul.fp32_precision",
                 lambda: b.cuda.matmul.fp32_precision),
                ("torch.backends.cudnn.conv.fp32_precision", lambda: b.cudnn.conv.fp32_precision)]:
            try:
                flags[key] = read()
            except (AttributeError, RuntimeError):
                pass
    return flags


def flags_line(flags: dict) -> str:
    default = (flags.get("torch.backends.cuda.matmul.allow_tf32") is False
               and flags.get("torch.backends.cudnn.allow_tf32") is True)
    shown = ", ".join(f"{k}={v!r}" for k, v in flags.items())
    return (f"{shown} -> {'PyTorch defaults (cuDNN TF32 on, matmul TF32 off)' if default else 'NOT PyTorch defaults'}")


class FakeOOM:
    """``--fake-oom-above N``: raise OutOfMemoryError for batches above N (tests the retry)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def check(self, batch: int) -> None:
        if self.limit is not None and batch > self.limit:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory (simulated by --fake-oom-above {self.limit}, batch {batch})")


def with_oom_retry(what: str, batch: int, run, device: torch.device):
    """``run(batch)``; on OutOfMemoryError halve the batch, empty the cache and retry."""
    while True:
        try:
            return run(batch), batch
        except torch.cuda.OutOfMemoryError as err:
            if batch <= 1:
                raise
            why = str(err).strip().splitlines()[0][:160] if str(err).strip() else "out of memory"
        # Outside the except block: the traceback (and the tensors its frames hold) is gone.
        free_memory(device)
        print(f"{what}: batch {batch} ran out of GPU memory ({why}); emptied the CUDA cache, "
              f"retrying with batch {batch // 2}", flush=True)
        batch //= 2


def new_model(device: torch.device, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = tlkit.get_backbone("resnet50", weights=None, progress=False)  # 1000 classes
    return model.to(device)


def amp_settings(device: torch.device):
    """tlkit's choice of autocast dtype (bf16 on Ampere+, fp16 + GradScaler before, None on CPU)."""
    dtype = tlkit.autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return dtype, scaler


def train_step(model, opt, x, y, dtype, scaler) -> torch.Tensor:
    """One training step in the fast configuration (x already channels_last on the device)."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        loss = nn.functional.cross_entropy(model(x), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss


# --- data ----------------------------------------------------------------------------------

class RepeatDataset(torch.utils.data.Dataset):
    """``length`` items cycling through a pool of normalised float32 images in CPU memory."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, length: int) -> None:
        self.x, self.y, self.length = x, y, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        j = i % len(self.x)
        return self.x[j], int(self.y[j])


def image_pool(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n random uint8 images turned into float32 and normalised like ImageNet input."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.randint(0, 1000, (n,), generator=g)
    return x.contiguous(), y


def _make_one_jpeg(job) -> None:
    from PIL import Image

    path, photo, seed, lo, hi = job
    rng = random.Random(seed)
    h, w = photo.shape[:2]
    ch, cw = rng.randint(min(h, 160), h), rng.randint(min(w, 160), w)
    top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
    img = Image.fromarray(photo[top:top + ch, left:left + cw])
    img = img.resize((rng.randint(lo, hi), rng.randint(lo, hi)), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img.save(path, "JPEG", quality=rng.randint(85, 95))


def make_jpegs(folder: Path, n: int, classes: int, seed: int, lo: int = 256, hi: int = 400,
               threads: int = 4) -> tuple[list[str], list[int]]:
    """n JPEGs (lo-hi px a side, random crops of scikit-image's bundled photos) in folder."""
    import skimage.data

    photos = [getattr(skimage.data, name)() for name in ("chelsea", "astronaut", "coffee", "rocket")]
    jobs, labels = [], []
    for i in range(n):
        label = i % classes
        sub = folder / f"class{label:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        jobs.append((str(sub / f"{i:05d}.jpg"), photos[i % len(photos)], seed * 1_000_003 + i, lo, hi))
        labels.append(label)
    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(_make_one_jpeg, jobs))
    return [job[0] for job in jobs], labels


class JpegDataset(torch.utils.data.Dataset):
    """JPEG files decoded and augmented in the DataLoader workers (or only read: mode "gpu")."""

    def __init__(self, files: list[str], labels: list[int], size: int, mode: str) -> None:
        self.files, self.labels, self.size, self.mode = files, labels, size, mode
        if mode == "pil":  # the tutorial's transform: float32, normalised in the worker
            from torchvision import transforms as T
            self.transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                                        T.ToTensor(), T.Normalize(MEAN, STD)])
        elif mode == "cpu":  # uint8 all the way, normalised on the GPU (4x less to copy)
            from torchvision.transforms import v2
            self.transform = v2.Compose([v2.RandomResizedCrop(size, antialias=True),
                                         v2.RandomHorizontalFlip()])
        else:
            self.transform = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import torchvision

        if self.mode == "pil":
            from PIL import Image
            with Image.open(self.files[i]) as img:
                return self.transform(img.convert("RGB")), self.labels[i]
        data = torchvision.io.read_file(self.files[i])
        if self.mode == "gpu":
            return data, self.labels[i]
        img = torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB)
        return self.transform(img), self.labels[i]


def collate_bytes(batch):
    """For GPU decoding: the files' bytes end to end in one tensor, and their lengths.

    One tensor per batch, like the other modes: a list of hundreds of small tensors would be
    shared with the main process one file descriptor each (slow, and it can fail).
    """
    lengths = torch.tensor([len(item[0]) for item in batch])
    return (torch.cat([item[0] for item in batch]), lengths), torch.tensor([item[1] for item in batch])


def gpu_decode_batch(packed: tuple[torch.Tensor, torch.Tensor], device: torch.device,
                     size: int) -> torch.Tensor:
    """nvJPEG decodes the whole batch on the GPU; RandomResizedCrop + flip there too (uint8)."""
    import torchvision
    from torchvision import transforms as T
    from torchvision.transforms.v2 import functional as F2

    data, lengths = packed
    datas = list(torch.split(data, lengths.tolist()))  # contiguous 1-D views, one per file
    images = torchvision.io.decode_jpeg(datas, device=device,
                                        mode=torchvision.io.ImageReadMode.RGB)
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8, device=device)
    for k, img in enumerate(images):
        top, left, h, w = T.RandomResizedCrop.get_params(img, scale=(0.08, 1.0),
                                                         ratio=(3 / 4, 4 / 3))
        crop = F2.resized_crop(img, top, left, h, w, [size, size], antialias=True)
        out[k] = crop.flip(-1) if random.random() < 0.5 else crop
    return out


# --- P2cuda: tlkit.fit vs the tutorial's plain float32 loop ---------------------------------

class StepClock:
    """fit's on_batch: synchronise, then stamp the end of every step."""

    def __init__(self, device: torch.device, batch: int, fake: FakeOOM) -> None:
        self.device, self.batch, self.fake = device, batch, fake
        self.stamps: list[float] = []
        self.last_step = -1
        self.restarted = self.faked = False

    def __call__(self, epoch: int, step: int, loss: float) -> None:
        if not self.faked:  # once: fit's own retry then runs with a smaller batch
            self.faked = True
            try:
                self.fake.check(self.batch)
            except torch.cuda.OutOfMemoryError:
                self.restarted = True
                raise
        if step <= self.last_step:  # fit started the epoch again (it halved its batch)
            self.restarted = True
            self.stamps.clear()
        self.last_step = step
        sync(self.device)
        self.stamps.append(time.perf_counter())

    def rate(self, warmup: int, timed: int) -> tuple[float, float]:
        """img/s over the steps after the warm-up, and the median step time."""
        if len(self.stamps) != warmup + timed:
            raise RuntimeError(f"fit made {len(self.stamps)} steps, expected {warmup + timed}")
        seconds = self.stamps[-1] - self.stamps[warmup - 1]
        gaps = [b - a for a, b in zip(self.stamps[warmup - 1:], self.stamps[warmup:])]
        return timed * self.batch / seconds, statistics.median(gaps)


def fit_round(model, dataset, args, device, batch, seed, workers, fake) -> dict:
    clock = StepClock(device, batch, fake)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tlkit.fit(model, dataset, epochs=1, lr=args.lr, momentum=args.momentum,
                  batch_size=batch, seed=seed, device=device, progress=False,
                  num_workers=workers, on_batch=clock)
    halved = clock.restarted or any("does not fit in GPU memory" in str(w.message) for w in caught)
    for w in caught:
        if "does not fit in GPU memory" not in str(w.message):
            print(f"  tlkit.fit warned: {w.category.__name__}: {str(w.message)[:200]}")
    if halved:  # both sides must use the same batch: let with_oom_retry halve it for both
        raise torch.cuda.OutOfMemoryError(f"tlkit.fit halved batch {batch} (out of GPU memory)")
    rate, step = clock.rate(args.p2_warmup, args.p2_steps)
    return {"img_s": rate, "median_step_ms": step * 1000}


def plain_round(model, dataset, args, device, batch, seed, workers, fake) -> dict:
    """The tutorial's loop (float32, no autocast, default memory format)."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    model.train()
    steps, start = 0, None
    for x, y in loader:
        fake.check(batch)
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        steps += 1
        if steps == args.p2_warmup:
            sync(device)
            start = time.perf_counter()
    sync(device)
    seconds = time.perf_counter() - start
    if steps != args.p2_warmup + args.p2_steps:
        raise RuntimeError(f"the plain loop made {steps} steps, expected "
                           f"{args.p2_warmup + args.p2_steps}")
    del loader, optimizer
    return {"img_s": args.p2_steps * batch / seconds}


def plain_resident(model, args, device, batch, fake) -> float:
    """Reference: the plain float32 loop on one batch already on the GPU (no loader)."""
    x = torch.randn(batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    model.train()
    for i in range(args.p2_warmup + args.p2_steps):
        fake.check(batch)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        if i == args.p2_warmup - 1:
            sync(device)
            start = time.perf_counter()
    sync(device)
    return args.p2_steps * batch / (time.perf_counter() - start)


def p2(args, device, fake) -> dict:
    flags = precision_flags()
    print(f"{at()} P2cuda: tlkit.fit vs the tutorial's plain float32 loop; ResNet-50 (weights=None), "
          f"{args.size} px, SGD lr {args.lr} momentum {args.momentum}; {args.p2_rounds} "
          f"interleaved rounds per side of {args.p2_warmup} warm-up + {args.p2_steps} timed "
          f"steps; loader: {args.p2_workers} workers, "
          f"{'pinned memory' if device.type == 'cuda' else 'no pinning (CPU)'}, a pool of "
          f"{args.p2_pool} random normalised float32 images", flush=True)
    print(f"  plain loop measured with these float32 settings (this script sets none of them "
          f"for P2): {flags_line(flags)}")
    conv_tf32 = flags.get("torch.backends.cudnn.allow_tf32")
    matmul_tf32 = flags.get("torch.backends.cuda.matmul.allow_tf32")
    print(f"  TF32 in the plain loop: convolutions {'ON' if conv_tf32 else 'off'} "
          f"(cudnn.allow_tf32={conv_tf32}), matmuls {'ON' if matmul_tf32 else 'off'} "
          f"(cuda.matmul.allow_tf32={matmul_tf32})" + (
              "" if device.type == "cuda" else " [no effect on the CPU]"))
    dtype, _ = amp_settings(device)
    print(f"  tlkit.fit on {device.type}: autocast dtype {dtype} (tlkit.autocast_dtype), "
          f"channels_last {'on' if device.type == 'cuda' else 'off (CPU)'}")
    pool_x, pool_y = image_pool(args.p2_pool, args.size, args.seed)

    def run(batch: int) -> dict:
        base = new_model(device, args.seed)
        models = {"plain": base, "fit": copy.deepcopy(base)}
        length = (args.p2_warmup + args.p2_steps) * batch
        dataset = RepeatDataset(pool_x, pool_y, length)
        rates: dict[str, list[dict]] = {"plain": [], "fit": []}
        try:
            for r in range(args.p2_rounds):
                order = ("plain", "fit") if r % 2 == 0 else ("fit", "plain")
                line = []
                for side in order:
                    fn = plain_round if side == "plain" else fit_round
                    res = fn(models[side], dataset, args, device, batch, args.seed + r,
                             args.p2_workers, fake)
                    rates[side].append(res)
                    line.append(f"{side} {res['img_s']:7.1f} img/s")
                print(f"  round {r + 1} (batch {batch}): " + ", ".join(line), flush=True)
            # References (one round each): plain without a loader; fit with num_workers=0.
            resident = plain_resident(models["plain"], args, device, batch, fake)
            fit0 = fit_round(models["fit"], dataset, args, device, batch, args.seed, 0, fake)
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
        finally:
            del models, base
            free_memory(device)
        return {"rates": rates, "resident": resident, "fit0": fit0["img_s"], "peak": peak}

    out, batch = with_oom_retry("P2cuda", args.p2_batch, run, device)
    plain = statistics.median(r["img_s"] for r in out["rates"]["plain"])
    fit = statistics.median(r["img_s"] for r in out["rates"]["fit"])
    fit_step = statistics.median(r["median_step_ms"] for r in out["rates"]["fit"])
    ratio = fit / plain
    after = precision_flags()
    print(f"  plain fp32 loop: median {plain:7.1f} img/s   (rounds: "
          f"{[round(r['img_s'], 1) for r in out['rates']['plain']]})")
    print(f"  tlkit.fit      : median {fit:7.1f} img/s   (rounds: "
          f"{[round(r['img_s'], 1) for r in out['rates']['fit']]}; median step {fit_step:.1f} ms)")
    print(f"  reference: plain fp32 on a batch already on the {device.type} (no loader) "
          f"{out['resident']:.1f} img/s; tlkit.fit with num_workers=0 (no workers) "
          f"{out['fit0']:.1f} img/s")
    if out["peak"]:
        print(f"  peak GPU memory {gib(out['peak'])}")
    if after != flags:
        print(f"  NOTE: the float32 settings changed during P2: {flags_line(after)}")
    print(f"  tlkit.fit / plain = {ratio:.2f} at batch {batch} (goal >= 2.5; NVIDIA's A100 "
          f"AMP/TF32 ratio 2.63)", flush=True)
    return {"ratio": ratio, "fit_img_s": fit, "plain_img_s": plain, "batch": batch,
            "fit_median_step_ms": fit_step,
            "rounds": out["rates"], "plain_gpu_resident_img_s": out["resident"],
            "fit_num_workers0_img_s": out["fit0"], "workers": args.p2_workers,
            "autocast_dtype": str(dtype), "precision_flags": flags,
            "plain_tf32": {"conv": conv_tf32, "matmul": matmul_tf32},
            "peak_memory_bytes": out["peak"]}


# --- P3: best-configuration throughput, synthetic and through the real input pipeline -------

def p3_synthetic(args, device, fake, compiled: bool = False) -> dict:
    what = "P3compile" if compiled else "P3"

    def run(batch: int) -> dict:
        model = opt = net = x = y = None
        try:
            model = new_model(device, args.seed).to(memory_format=torch.channels_last)
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
            dtype, scaler = amp_settings(device)
            net = torch.compile(model, backend=args.compile_backend) if compiled else model
            x = torch.randn(batch, 3, args.size, args.size, device=device).contiguous(
                memory_format=torch.channels_last)
            y = torch.randint(0, 1000, (batch,), device=device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            compile_s = None
            if compiled:  # the first call compiles (forward and backward graphs)
                sync(device)
                t = time.perf_counter()
                fake.check(batch)
                train_step(net, opt, x, y, dtype, scaler)
                sync(device)
                compile_s = time.perf_counter() - t
            for i in range(args.p3_warmup + args.p3_steps):
                fake.check(batch)
                train_step(net, opt, x, y, dtype, scaler)
                if i == args.p3_warmup - 1:
                    sync(device)
                    start = time.perf_counter()
            sync(device)
            rate = args.p3_steps * batch / (time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
            return {"img_s": rate, "compile_s": compile_s, "peak": peak, "dtype": str(dtype),
                    "state": (model, opt, dtype, scaler) if not compiled else None}
        finally:
            x = y = net = None
            if compiled:
                model = opt = None
            free_memory(device)

    out, batch = with_oom_retry(what, args.p3_batch, run, device)
    out["batch"] = batch
    extra = f", compile {out['compile_s']:.1f} s (excluded)" if compiled else ""
    print(f"  {what} synthetic ({'torch.compile, ' if compiled else ''}{out['dtype']} autocast + "
          f"channels_last, cudnn.benchmark, batch {batch}): {out['img_s']:.1f} img/s"
          f"{extra}" + (f"; peak GPU memory {gib(out['peak'])}" if out["peak"] else ""),
          flush=True)
    return out


def p3_pipeline(args, device, fake, files, labels, state, batch) -> dict:
    model, opt, dtype, scaler = state
    size = args.size
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    steps_total = args.pipe_warmup + args.pipe_steps
    per_batch = (3 * size * size * (4 if args.decode == "pil" else 1) if args.decode != "gpu"
                 else 60_000)
    prefetch = 4
    try:
        shm = os.statvfs("/dev/shm")
        shm_free = shm.f_bavail * shm.f_frsize
    except OSError:
        shm_free = None
    if shm_free is not None and args.workers * prefetch * batch * per_batch > shm_free / 2:
        prefetch = 2
        print(f"  /dev/shm has {gib(shm_free)} free: prefetch_factor lowered to 2")

    def run(b: int) -> dict:
        dataset = JpegDataset(files, labels, size, args.decode)
        sampler = torch.utils.data.RandomSampler(
            dataset, num_samples=steps_total * b, generator=torch.Generator().manual_seed(args.seed))
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=b, sampler=sampler, drop_last=True,
            num_workers=args.workers, pin_memory=device.type == "cuda",
            persistent_workers=args.workers > 0, prefetch_factor=prefetch if args.workers else None,
            collate_fn=collate_bytes if args.decode == "gpu" else None,
            timeout=args.loader_timeout if args.workers else 0)  # an error, never a hang
        it = iter(loader)
        try:
            steps, start = 0, None
            for x, y in it:
                fake.check(b)
                if args.decode == "gpu":
                    x = gpu_decode_batch(x, device, size)
                else:
                    x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last)
                if x.dtype == torch.uint8:  # normalise on the GPU, channels_last kept
                    x = x.float().sub_(mean).div_(std)
                train_step(model, opt, x, y, dtype, scaler)
                steps += 1
                if steps == args.pipe_warmup:
                    sync(device)
                    start = time.perf_counter()
            sync(device)
            if steps != steps_total:
                raise RuntimeError(f"the pipeline gave {steps} batches, expected {steps_total}")
            return {"img_s": args.pipe_steps * b / (time.perf_counter() - start)}
        finally:
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            del it, loader
            free_memory(device)

    out, b = with_oom_retry("P3 pipeline", batch, run, device)
    out.update(batch=b, decode=args.decode, workers=args.workers, prefetch_factor=prefetch,
               jpegs=len(files))
    return out


# --- main ----------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-smoke", action="store_true",
                   help="run every part on the CPU with tiny sizes (a check that the script runs)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (P3)")
    p.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend (default inductor; aot_eager checks the code path)")
    p.add_argument("--decode", choices=("cpu", "pil", "gpu"), default="cpu",
                   help="pipeline decoding: cpu (torchvision.io in workers, default), pil "
                        "(the tutorial's transforms), gpu (nvJPEG)")
    p.add_argument("--out", help="JSON file for the figures (default $TLKIT_GPU_RESULTS or "
                                 "bench/gpu-results.json; --cpu-smoke: a temporary file)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p2-batch", type=int, default=128)
    p.add_argument("--p2-rounds", type=int, default=3)
    p.add_argument("--p2-warmup", type=int, default=10)
    p.add_argument("--p2-steps", type=int, default=40)
    p.add_argument("--p2-workers", type=int, default=min(8, cpu_count()),
                   help="DataLoader workers for both P2 sides (default min(8, CPUs))")
    p.add_argument("--p2-pool", type=int, default=256, help="distinct images in P2's pool")
    p.add_argument("--p3-batch", type=int, default=256)
    p.add_argument("--p3-warmup", type=int, default=15)
    p.add_argument("--p3-steps", type=int, default=80)
    p.add_argument("--pipe-warmup", type=int, default=10, help="pipeline batches not timed")
    p.add_argument("--pipe-steps", type=int, default=60, help="pipeline batches timed")
    p.add_argument("--jpegs", type=int, default=2000)
    p.add_argument("--workers", type=int, default=cpu_count(),
                   help="pipeline DataLoader workers (default: the CPU count)")
    p.add_argument("--loader-timeout", type=float, default=120,
                   help="seconds to wait for one pipeline batch before giving up")
    p.add_argument("--fake-oom-above", type=int, default=None, metavar="N",
                   help="testing aid: pretend batches above N run out of GPU memory")
    args = p.parse_args(argv)
    if args.cpu_smoke:  # tiny everything: minutes of CPU would otherwise become hours
        args.size = 32
        args.p2_batch = args.p3_batch = 4
        args.p2_rounds, args.p2_warmup, args.p2_steps, args.p2_pool = 1, 1, 2, 8
        args.p2_workers = min(args.p2_workers, 1)
        args.p3_warmup, args.p3_steps = 1, 2
        args.pipe_warmup, args.pipe_steps = 1, 2
        args.jpegs = min(args.jpegs, 24)
        args.workers = min(args.workers, 2)
    for name in ("p2_warmup", "p3_warmup", "pipe_warmup", "p2_steps", "p3_steps", "pipe_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(f"{NO_CUDA}: torch {torch.__version__} reports torch.cuda.is_available() = False. "
              f"Nothing was measured. (--cpu-smoke runs it on the CPU with tiny sizes.)")
        return 0
    wall = time.perf_counter()
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    fake = FakeOOM(args.fake_oom_above)
    warnings.filterwarnings("ignore", category=tlkit.CPUTrainingWarning)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        props = torch.cuda.get_device_properties(device)
        gpu = (f"{name}, compute capability {props.major}.{props.minor}, "
               f"{gib(props.total_memory)}")
    else:
        name, gpu = "CPU smoke run (no GPU)", "none: --cpu-smoke, figures are not GPU figures"
    import torchvision
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"bench/gpu.py {started:%Y-%m-%d %H:%M} UTC on {socket.gethostname()}: GPU {gpu}; "
          f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}), torchvision {torchvision.__version__}, Python "
          f"{platform.python_version()}, {cpu_count()} CPUs", flush=True)

    results: dict = {"gpu": name, "gpu_detail": gpu, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
                     "cpus": cpu_count(), "host": socket.gethostname(),
                     "date": started.isoformat(timespec="seconds"), "cpu_smoke": args.cpu_smoke,
                     "args": vars(args)}
    failures = []

    with tempfile.TemporaryDirectory(prefix="tlkit-gpu-bench-") as tmp:
        t = time.perf_counter()
        lo, hi = 256, 400
        files, labels = make_jpegs(Path(tmp), args.jpegs, classes=10, seed=args.seed, lo=lo,
                                   hi=hi, threads=cpu_count())
        size_mb = sum(os.path.getsize(f) for f in files) / 1e6
        print(f"{at()} wrote {len(files)} JPEGs ({lo}-{hi} px, {size_mb:.0f} MB) to {tmp} in "
              f"{time.perf_counter() - t:.1f} s", flush=True)

        p2_out = None
        try:
            p2_out = p2(args, device, fake)
            results["P2cuda"] = p2_out
        except Exception:
            traceback.print_exc()
            failures.append("P2cuda")
            free_memory(device)

        print(f"{at()} P3: ResNet-50 (weights=None) training, {args.size} px, best configuration "
              f"(cudnn.benchmark=True from here on)", flush=True)
        torch.backends.cudnn.benchmark = True
        syn = pipe = None
        try:
            syn = p3_synthetic(args, device, fake)
            results["P3_synthetic"] = {k: v for k, v in syn.items() if k != "state"}
        except Exception:
            traceback.print_exc()
            failures.append("P3 synthetic")
            free_memory(device)
        if syn is not None:
            try:
                print(f"{at()} pipeline: {len(files)} JPEGs, decode={args.decode}, "
                      f"RandomResizedCrop {args.size} + flip, {args.workers} workers, "
                      f"{'pin_memory' if device.type == 'cuda' else 'no pinning (CPU)'}, "
                      f"persistent_workers; {args.pipe_warmup} warm-up + "
                      f"{args.pipe_steps} timed batches", flush=True)
                pipe = p3_pipeline(args, device, fake, files, labels, syn["state"], syn["batch"])
                pipe["fraction"] = pipe["img_s"] / syn["img_s"]
                results["P3_pipeline"] = pipe
                print(f"  P3 pipeline (decode={args.decode}, batch {pipe['batch']}): "
                      f"{pipe['img_s']:.1f} img/s = {pipe['fraction']:.2f} of synthetic "
                      f"(goal >= 0.9)", flush=True)
            except Exception:
                traceback.print_exc()
                failures.append("P3 pipeline")
            finally:
                syn["state"] = None
                free_memory(device)

    if args.compile:
        print(f"{at()} P3compile: torch.compile(model), the same step", flush=True)
        try:
            comp = p3_synthetic(args, device, fake, compiled=True)
            comp.pop("state", None)
            results["P3_compile"] = comp
            print(f"P3compile img_s={comp['img_s']:.1f} compile_s={comp['compile_s']:.1f} "
                  f"batch={comp['batch']}", flush=True)
        except Exception:
            traceback.print_exc()
            failures.append("P3compile")
            free_memory(device)

    seconds = time.perf_counter() - wall
    results["wall_s"] = seconds
    results["failures"] = failures
    ratio = p2_out["ratio"] if p2_out else math.nan
    syn_rate = syn["img_s"] if syn else math.nan
    fraction = pipe["fraction"] if pipe else math.nan
    results["summary"] = {"P2cuda_ratio": ratio, "P3_img_s": syn_rate,
                          "P3_pipeline_fraction": fraction}
    out = Path(args.out or os.environ.get("TLKIT_GPU_RESULTS") or (
        Path(tempfile.gettempdir()) / "tlkit-gpu-results-cpu-smoke.json" if args.cpu_smoke
        else Path(__file__).resolve().parent / "gpu-results.json"))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp")
        tmp_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        tmp_out.replace(out)
        print(f"figures written to {out}")
    except OSError as err:
        print(f"could not write {out}: {err}")
        failures.append("json")
    goals = []
    if not math.isnan(ratio):
        goals.append(f"ratio {ratio:.2f} {'>=' if ratio >= 2.5 else '<'} 2.5")
    if not math.isnan(syn_rate):
        goals.append(f"synthetic {syn_rate:.0f} img/s {'>=' if syn_rate >= 2470 else '<'} 2470")
    if not math.isnan(fraction):
        goals.append(f"fraction {fraction:.2f} {'>=' if fraction >= 0.9 else '<'} 0.9")
    print(f"total {seconds:.0f} s{' (over the 8-minute budget!)' if seconds > 480 else ''}; "
          f"{'FAILED: ' + ', '.join(failures) if failures else 'all parts ran'}; goals: "
          f"{'; '.join(goals) or '-'}" + ("  [CPU smoke: not GPU figures]" if args.cpu_smoke else ""))
    print(f"P2cuda ratio={ratio:.2f}")
    print(f"P3 img_s={syn_rate:.0f} pipeline_fraction={fraction:.2f}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
