"""Where code runs: CPU or GPU, which precision, and which notebook service.

The training loop asks these questions once; lessons use them to say plainly when a run
is on a CPU (the silent-CPU-fallback surprise learners report on Colab).

The device rule, the same for every tlkit function:

- a function that takes ``device=`` (``fit``, ``evaluate``, ``fine_tune``, ``extract_features``,
  ``adapt_batchnorm``, ``latency``) runs the model there — by default the GPU when there is one
  (``latency``: the CPU unless told) — and afterwards puts the model back on the device (and in the memory layout) it found it on;
- a method without ``device=`` (``model(x)``, ``encoder.encode``) runs where the model is;
- every tensor tlkit returns (features, embeddings) is on the CPU.

So ``model.head(features)`` and ``model(images)`` work after any tlkit call, on a laptop and on
a Colab GPU alike, without a single ``.to(...)`` in a lesson.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

__all__ = ["default_device", "as_device", "autocast_dtype", "on_colab", "on_binder",
           "environment", "available_cpus", "one_blas_thread", "running_on", "device_of"]


def default_device() -> torch.device:
    """``cuda`` when a GPU is usable, else ``cpu`` (``TLKIT_DEVICE`` overrides).

    Example::

        model.to(tlkit.default_device())
    """
    forced = os.environ.get("TLKIT_DEVICE", "").strip()
    if forced:
        return as_device(forced, name="TLKIT_DEVICE")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_device(device: torch.device | str | None, *, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine; None: the default.

    A GPU asked for on a machine without one fails here, naming the fix, instead of deep
    inside the first ``.to()`` with a CUDA driver message.
    """
    if device is None:
        return default_device()
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be 'cpu', 'cuda', 'cuda:0', a torch.device or None, got "
                        f"{device!r} ({type(device).__name__})")
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name}={device!r} is not a device: use 'cpu', 'cuda' or 'cuda:0' "
                         f"(or None for the default)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{name}={str(device)!r} but this machine has no usable CUDA GPU: "
                               f"use device='cpu' (on Colab: Runtime → Change runtime type → GPU)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"{name}={str(device)!r} but there are only "
                               f"{torch.cuda.device_count()} GPU(s): use 'cuda:0'")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{name}='mps' but this machine has no Apple GPU: use device='cpu'")
    elif device.type not in ("cpu", "mps"):
        raise ValueError(f"{name}={str(device)!r}: tlkit runs on 'cpu' or 'cuda'")
    return device


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter (or buffer) is; the CPU for a model without tensors."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def running_on(model: nn.Module, device: torch.device) -> Iterator[torch.device]:
    """Inside the block ``model`` is on ``device``; afterwards it is back where it was.

    Also on an error: a failed GPU run leaves the model on the device the learner put it on.
    A layout change made inside (channels_last on a GPU) is undone too.

    Example::

        with running_on(model, torch.device("cuda")):
            logits = model(x.cuda())
    """
    home = device_of(model)
    layouts = {name: p.is_contiguous() for name, p in model.named_parameters() if p.dim() == 4}
    try:
        model.to(device)  # inside: a move that fails halfway (GPU memory) is undone too
        yield device
    finally:
        if any(not p.is_contiguous() for name, p in model.named_parameters()
               if layouts.get(name, False)):
            model.to(memory_format=torch.contiguous_format)
        model.to(home)  # every tensor, not only the first: a no-op for those already there


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``, or None for full float32.

    bfloat16 where the GPU supports it (Ampere and newer): same range as float32, so no
    loss scaling is needed. float16 on older GPUs such as Colab's T4, which then needs a
    GradScaler. None on CPU: CPU autocast rarely speeds up these small convnets.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    try:
        # Emulated bfloat16 (older GPUs) is slow: ask for native support only.
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no including_emulation and reports native support
        native = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if native else torch.float16


def available_cpus() -> int:
    """CPUs this process may really use: its affinity, capped by a container's CPU quota.

    In a container (Binder, Docker) ``os.cpu_count()`` reports the host's cores; torch then
    starts that many threads on a 1-CPU quota and they spend their time waiting for each other.
    Example: ``torch.set_num_threads(available_cpus())``
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus or 1, max(1, int(quota)))
    return max(1, cpus or 1)


def one_blas_thread() -> bool:
    """Run NumPy's and SciPy's BLAS on one thread (torch keeps its own); False if you chose.

    scikit-learn's fits in the lessons are tiny (tens of images × a few thousand numbers), and a
    second OpenBLAS thread costs more in hand-offs than it computes: 12 logistic regressions on
    raw texture pixels took 16.6 s with 2 threads and 2.6 s with 1 on 2 idle cores, 22 s and
    2.3 s on Binder's 1 CPU (bench/RESULTS.md). ``tlkit.setup()`` calls it.
    Example: ``one_blas_thread()``
    """
    if any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return False  # the learner's own setting wins
    # A BLAS loaded later (SciPy's own OpenBLAS, with scikit-learn) reads this when it loads …
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:  # … one loaded already (NumPy's) is told now; torch's libraries are left alone.
        from threadpoolctl import ThreadpoolController
        for lib in ThreadpoolController().lib_controllers:
            if lib.user_api == "blas" and "torch" not in (lib.filepath or "").split(os.sep):
                lib.set_num_threads(1)
    except (ImportError, AttributeError):  # threadpoolctl < 3 or missing: the variable alone
        pass
    return True


def _cgroup_cpu_quota(proc_cgroup: str = "/proc/self/cgroup",
                      root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU quota (in CPUs) of this process's cgroup, v2 or v1; None when unlimited or unknown.

    Looked up at the process's own cgroup path first, then at the root: inside a container's
    cgroup namespace the process's cgroup *is* the root.
    """
    try:
        lines = open(proc_cgroup).read().splitlines()
    except OSError:
        lines = []
    places = []  # (file with "quota period", or quota file and period file)
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        path = path.strip("/")
        if controllers == "":  # cgroup v2: one unified hierarchy
            places += [(os.path.join(root, path, "cpu.max"), None),
                       (os.path.join(root, "unified", path, "cpu.max"), None)]
        elif "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                base = os.path.join(root, mount, path)
                places.append((os.path.join(base, "cpu.cfs_quota_us"),
                               os.path.join(base, "cpu.cfs_period_us")))
    places += [(os.path.join(root, "cpu.max"), None),
               (os.path.join(root, "cpu", "cpu.cfs_quota_us"),
                os.path.join(root, "cpu", "cpu.cfs_period_us"))]
    for quota_file, period_file in places:
        try:
            if period_file is None:
                quota, period = open(quota_file).read().split()[:2]
            else:
                quota, period = open(quota_file).read().strip(), open(period_file).read().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return int(quota) / int(period)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def on_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def on_binder() -> bool:
    """True inside a mybinder.org session (repo2docker sets BINDER_* variables)."""
    return any(k.startswith("BINDER_") for k in os.environ) or "BINDER_SERVICE_HOST" in os.environ


def environment() -> str:
    """'colab', 'binder' or 'local'."""
    return "colab" if on_colab() else "binder" if on_binder() else "local"
