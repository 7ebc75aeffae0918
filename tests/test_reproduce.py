"""``python -m tlkit reproduce animals`` on the CPU, against a CIFAR-10 stand-in served on
127.0.0.1 through the real downloader, with random zoo weights in a temporary torch.hub cache."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import standins  # tests/standins
from test_online import served  # noqa: F401  (fixture)
from tlkit.teach import reproduce

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).parents[1]


@pytest.fixture
def cifar_standin(served, tmp_path, monkeypatch):  # noqa: F811
    www, base = served
    manifest = standins.build(www, base)
    standins.apply(manifest, setitem=monkeypatch.setitem, setattr=monkeypatch.setattr)
    standins.write_checkpoints(os.environ["TORCH_HOME"], names=("resnet18",))
    return manifest, tmp_path / "data"


def test_the_six_animal_classes_keep_their_photos_and_get_labels_0_to_5(cifar_standin):
    _, root = cifar_standin
    from tlkit.data.online import load_online

    cifar = load_online("cifar10", split="train", root=root)
    animals = reproduce.animal_photos("train", root=root)
    assert animals.classes == ["bird", "cat", "deer", "dog", "frog", "horse"]
    counts = np.bincount(cifar.targets, minlength=10)
    assert animals.class_counts() == {name: int(counts[cifar.classes.index(name)])
                                      for name in animals.classes}
    # The same pixels as CIFAR-10's photo of that class, in order.
    dogs = np.flatnonzero(np.asarray(cifar.targets) == cifar.classes.index("dog"))
    mine = np.flatnonzero(np.asarray(animals.targets) == animals.classes.index("dog"))
    assert np.array_equal(animals.images[mine], cifar.images[dogs])
    assert len(reproduce.animal_photos("test", root=root, limit=6)) == 6


def test_reproduce_prints_accuracy_and_seconds_per_epoch_and_the_machine(cifar_standin, capsys):
    _, root = cifar_standin
    result = reproduce.reproduce_animals(backbone="resnet18", epochs=1, head_epochs=1, size=32,
                                         batch_size=8, num_workers=0, root=root,
                                         progress=False, device="cpu")
    out = capsys.readouterr().out
    assert "resnet18 (ImageNet weights) on CIFAR-10's 6 animal classes" in out
    assert "epoch 1 (head only): test accuracy" in out and "epoch 2 (all layers)" in out
    assert f"on {reproduce.machine()}" in out and "CPU" in out
    assert len(result["accuracy"]) == len(result["seconds"]) == 2
    assert all(0 <= a <= 1 for a in result["accuracy"]) and all(s > 0 for s in result["seconds"])
    assert result["test_images"] == 12 and result["train_images"] == 30


def test_the_command_line_names_the_claim_and_refuses_another():
    run = subprocess.run([sys.executable, "-m", "tlkit", "reproduce", "pets"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "invalid choice: 'pets'" in run.stderr
    run = subprocess.run([sys.executable, "-m", "tlkit", "help"], capture_output=True, text=True)
    assert "tlkit reproduce animals" in run.stdout
