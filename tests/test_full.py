"""FULL mode, offline: every data set FULL mode downloads, and ResNet-50's ImageNet weights,
replaced by tiny stand-ins in the real formats (tests/standins/), served from 127.0.0.1.

The unit tests load each stand-in through the real registry + downloader + parser. The
``full`` test runs every lesson with TLKIT_FULL=1 in a kernel whose sitecustomize
(tests/standins/sitecustomize.py) points the registry at the local server:
``pytest -m full tests/test_full.py`` or ``make test-full``; ``-m "not full"`` skips it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import standins
from test_online import serving

ROOT = Path(__file__).parents[1]
LESSONS = sorted((ROOT / "course").glob("0*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Stand-ins served on 127.0.0.1, their manifest, and a torch home with random weights."""
    root = tmp_path_factory.mktemp("standins")
    www = root / "www"
    www.mkdir()
    with serving(www) as base:
        manifest = standins.build(www, base)
        path = standins.write_manifest(manifest, root / "manifest.json")
        small = standins.build(www / "small", f"{base}/small", **standins.SMALL)
        small_path = standins.write_manifest(small, root / "manifest-small.json")
        checkpoints = standins.write_checkpoints(root / "torch")
        yield {"root": root, "base": base, "manifest": manifest, "manifest_path": path,
               "small_manifest_path": small_path,
               "torch_home": root / "torch", "checkpoints": checkpoints}


@pytest.fixture
def patched(site, monkeypatch, tmp_path):
    """This process's registry and torchvision md5 tables pointed at the stand-ins."""
    monkeypatch.delenv("TLKIT_OFFLINE", raising=False)
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path / "data"))
    standins.apply(site["manifest"], setitem=monkeypatch.setitem, setattr=monkeypatch.setattr)
    return site


# --- every stand-in parses through the real code path ---------------------------------------

def _counts(per_class: dict[str, int]) -> dict[str, int]:
    return dict(per_class)


EXPECTED = {
    "hymenoptera": {s: _counts(c) for s, c in standins.HYMENOPTERA.items()},
    "eurosat": {"train": {c: 4 for c in standins.EUROSAT_CLASSES},
                "test": {c: 1 for c in standins.EUROSAT_CLASSES}},
    "pneumoniamnist": {s: {"normal": n // 2, "pneumonia": n // 2}
                       for s, n in standins.PNEUMONIA.items()},
    "cifar10": {"train": {c: 5 for c in standins.CIFAR_CLASSES},
                "test": {c: 2 for c in standins.CIFAR_CLASSES}},
    "sst2": {"train": {"negative": 100, "positive": 100},
             "test": {"negative": 10, "positive": 10}},
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_standin_loads_through_the_registry(patched, name, tmp_path):
    import tlkit
    from tlkit.data.online import ONLINE_DATASETS

    entry = ONLINE_DATASETS[name]
    assert all(f.url.startswith(patched["base"]) for f in entry.files)
    assert tuple(EXPECTED[name]) == entry.splits
    for split, counts in EXPECTED[name].items():
        ds = tlkit.load_dataset(name, split=split)
        assert ds.classes == list(counts)
        assert ds.class_counts() == counts
        assert len(ds) == sum(counts.values())
        item, label = ds[len(ds) - 1]
        if name == "sst2":
            assert isinstance(item, str) and item
        else:
            assert item.mode == "RGB" and label == ds.targets[-1]
    # Downloaded once, through tlkit.data.download, into $TLKIT_DATA/<name>/.
    for f in entry.files:
        assert (tmp_path / "data" / name / f.name).is_file()


@pytest.mark.timeout(120)
def test_flowers102_standin(patched, tmp_path):
    import tlkit
    from torchvision.datasets import Flowers102

    for split in ("train", "val", "test"):
        ds = tlkit.load_dataset("flowers102", split=split)
        assert ds.classes == Flowers102.classes and len(ds.classes) == 102
        assert ds.class_counts() == {c: 1 for c in Flowers102.classes}
        image, label = ds[7]
        assert image.mode == "RGB" and label == 7
    assert {p.name for p in (tmp_path / "data" / "flowers102").iterdir()} >= {
        "102flowers.tgz", "imagelabels.mat", "setid.mat", "flowers-102"}


def test_a_standin_is_checked_like_the_real_file(patched, tmp_path):
    """The stand-ins' checksums are enforced exactly as the published ones would be."""
    from tlkit.data.download import ChecksumError
    from tlkit.data.online import load_online

    www = patched["root"] / "www" / "pneumoniamnist" / "pneumoniamnist.npz"
    good = www.read_bytes()
    try:
        www.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        with pytest.raises(ChecksumError):
            load_online("pneumoniamnist", root=tmp_path / "other")
    finally:
        www.write_bytes(good)


def test_torchvision_checks_cifar_and_flowers_members_itself(site, tmp_path, monkeypatch):
    """Why the hook patches torchvision too: with only the registry pointed at the stand-ins,
    CIFAR10 and Flowers102 reject the extracted files against their published md5s."""
    import tlkit
    from tlkit.data import online

    monkeypatch.delenv("TLKIT_OFFLINE", raising=False)
    standins.standins_hook.patch_registry(online, site["manifest"], monkeypatch.setitem)
    for name in ("cifar10", "flowers102"):
        with pytest.raises(RuntimeError, match="not found or corrupted"):
            tlkit.load_dataset(name, split="test", root=tmp_path)


@pytest.mark.timeout(120)
def test_resnet50_imagenet_loads_the_standin_offline(site, monkeypatch):
    import torch

    import tlkit

    monkeypatch.setenv("TORCH_HOME", str(site["torch_home"]))
    monkeypatch.setenv("TLKIT_OFFLINE", "1")  # no download may be attempted
    for name, path in zip(standins.FULL_BACKBONES, site["checkpoints"]):
        model = tlkit.get_backbone(name, weights="imagenet")
        assert model.weights.file_path() == path
        saved = torch.load(path, weights_only=True)
        mine = {k.split(".", 1)[-1]: v for k, v in model.state_dict().items()}
        key = "layer4.2.conv3.weight"
        assert any(torch.equal(v, saved[key]) for k, v in mine.items() if k.endswith("conv3.weight"))
        assert len(model.weights.meta["categories"]) == 1000


@pytest.mark.timeout(120)
def test_the_kernel_hook_patches_a_fresh_process(site, tmp_path):
    """What a lesson kernel gets: registry and torchvision tables patched on import, and the
    offline guard still on (Python runs only one sitecustomize: ours runs the guard)."""
    code = (
        "import socket, tlkit, torchvision.datasets as d\n"
        "from tlkit.data.online import ONLINE_DATASETS as R\n"
        "print(R['cifar10'].files[0].url); print(R['hymenoptera'].files[0].md5)\n"
        "print(d.CIFAR10.meta['md5']); print(d.Flowers102._file_dict['setid'][1])\n"
        "try:\n    socket.create_connection(('10.255.255.1', 80), timeout=1)\n"
        "except OSError as e:\n    print('refused:', e)\n")
    env = {**os.environ, "TLKIT_STANDINS": str(site["manifest_path"]),
           "PYTHONPATH": standins.kernel_pythonpath(os.environ.get("PYTHONPATH", ""))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=100, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    m = site["manifest"]
    assert lines[0] == m["datasets"]["cifar10"][0]["url"]
    assert lines[1] == "None"  # hymenoptera publishes no checksum: still none
    assert lines[2] == m["torchvision"]["cifar10"]["batches.meta"]
    assert lines[3] == m["torchvision"]["flowers102"]["setid.mat"]
    assert lines[4].startswith("refused: tests may not use the network")


# --- every lesson in FULL mode ----------------------------------------------------------------

# What each lesson's `if course.full:` cells must print (they print "FULL = False: ..." when
# skipped).
_SMALL_ANTS = sum(standins.SMALL["hymenoptera"]["train"].values())
FULL_OUTPUT = {
    "01": ["ants vs. bees, k = 25: ResNet-50 features"],
    "02": [],
    "05": [],
    "06": [f"pneumoniamnist: {standins.PNEUMONIA['train']} training images, validation accuracy",
           f"eurosat: {2 * len(standins.EUROSAT_CLASSES)} training images, validation accuracy",
           "hymenoptera, feature extraction + logistic regression:",
           f"hymenoptera: {_SMALL_ANTS} training images, validation accuracy"],
    "07": ["SST-2, 100 labelled sentences per class:"],
}
# FULL mode changes nothing but the `if course.full:` cells (tlkit reads TLKIT_FULL only in
# tlkit.setup), so a lesson without one is not run a second time; the default run covers it.
WITH_FULL_CELLS = [p for p in LESSONS if "course.full" in p.read_text(encoding="utf-8")]
NEEDS_25_PER_CLASS = {"01"}  # the rest fine-tune on the smaller stand-ins (standins.SMALL)


def test_only_the_lessons_setup_reads_full_mode():
    """The premise of running only WITH_FULL_CELLS: nothing else in tlkit looks at FULL."""
    readers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "tlkit").rglob("*.py")
               if "TLKIT_FULL" in p.read_text(encoding="utf-8")]
    assert readers == ["tlkit/teach/course.py"]
    assert set(FULL_OUTPUT) == {p.name[:2] for p in WITH_FULL_CELLS}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TIMINGS: dict[str, float] = {}


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append("\n".join(out.get("traceback", [])))
    return ANSI.sub("", "".join(parts))


def _failure(nb, err) -> str:
    for i, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.cell_type == "code" and errors:
            tb = ANSI.sub("", "\n".join(errors[0].get("traceback", [])))
            return (f"cell {i} failed:\n{cell.source}\n\n{errors[0]['ename']}: "
                    f"{errors[0]['evalue']}\n{tb}")
    return ANSI.sub("", str(err))


@pytest.mark.full
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", WITH_FULL_CELLS, ids=lambda p: p.stem)
def test_lesson_in_full_mode(path, site, tmp_path, monkeypatch, capsys):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    work = tmp_path / "course"
    work.mkdir()
    shutil.copy(path, work / path.name)
    nb = nbformat.read(work / path.name, as_version=4)
    # The kernel inherits this environment: FULL mode, the stand-ins' manifest and torch home,
    # fresh data and feature caches (so every lesson downloads through the local server).
    monkeypatch.delenv("TLKIT_OFFLINE", raising=False)
    manifest = site["manifest_path" if path.name[:2] in NEEDS_25_PER_CLASS else
                    "small_manifest_path"]
    for key, value in {"TLKIT_FULL": "1", "TLKIT_STANDINS": str(manifest),
                       "TORCH_HOME": str(site["torch_home"]),
                       "TLKIT_DATA": str(tmp_path / "data"),
                       "TLKIT_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg",
                       "PYTHONPATH": standins.kernel_pythonpath(os.environ["PYTHONPATH"])}.items():
        monkeypatch.setenv(key, value)
    client = NotebookClient(nb, timeout=1500, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} in FULL mode: {_failure(nb, err)}", pytrace=False)
    seconds = time.perf_counter() - start
    TIMINGS[path.stem] = seconds
    with capsys.disabled():
        print(f"\n{path.stem}: {seconds:.0f} s in FULL mode", end="")

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "mode: FULL" in _text(code[1]), _text(code[1])
    full_cells = [c for c in code if "if course.full" in c.source]
    printed = "".join(_text(c) for c in full_cells)
    assert "FULL = False" not in printed, printed
    for c in full_cells:
        assert c.outputs, f"a FULL cell printed nothing:\n{c.source}"
    for line in FULL_OUTPUT.get(path.name[:2], []):
        assert line in printed, f"{line!r} not in the FULL cells' output:\n{printed}"
