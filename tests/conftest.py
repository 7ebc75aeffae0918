"""Test-wide guards: no network beyond 127.0.0.1 — in this process and in every Python process
the tests start (kernels, JupyterLab, graders) — and caches in a temporary folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

OFFLINE = Path(__file__).with_name("offline")
sys.path.insert(0, str(OFFLINE))
import sitecustomize as offline  # noqa: E402  (tests/offline/sitecustomize.py)

# Children inherit the environment: with this folder first on PYTHONPATH, Python runs its
# sitecustomize at start-up in each of them, and the variable switches the guard on.
os.environ[offline.ENABLED] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(OFFLINE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
offline.install()


@pytest.fixture(autouse=True)
def _isolated_caches(monkeypatch, tmp_path_factory):
    """Feature, data and torch.hub caches live in a per-session temporary folder."""
    root = tmp_path_factory.getbasetemp() / "caches"
    monkeypatch.setenv("TLKIT_CACHE", str(root / "tlkit"))
    monkeypatch.setenv("TLKIT_DATA", str(root / "data"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def grace_hopper():
    """matplotlib's sample photograph of Grace Hopper in uniform, as a PIL RGB image."""
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")
