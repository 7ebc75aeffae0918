"""`tlkit doctor`, `tlkit demo`, and the environment checks behind them."""
from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import torch

import tlkit
from tlkit.teach.demo import format_table, run_demo, run_digits_demo, what_the_runs_show


def test_doctor_reports_versions_hardware_environment_and_offline_backbones():
    out = subprocess.run([sys.executable, "-m", "tlkit", "doctor"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert torch.__version__ in out
    assert "GPU" in out and "environment" in out and "local" in out
    line = next(l for l in out.splitlines() if l.startswith("backbones offline now"))
    assert "efficientnet_lite0" in line and "resnet50" not in line
    assert "GiB free" in out and "hub" in out
    text = next(l for l in out.splitlines() if l.startswith("text (lesson 07)"))
    assert "all-minilm-l6-v2 encoder and vader_words offline" in text  # `make install` has it


def test_unknown_command_prints_usage_and_fails():
    run = subprocess.run([sys.executable, "-m", "tlkit", "train"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "usage: tlkit doctor" in run.stdout


def test_environment_detection(monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("BINDER_")]:
        monkeypatch.delenv(key)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert tlkit.environment() == "local"
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    assert tlkit.environment() == "binder"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert tlkit.on_colab() and tlkit.environment() == "colab"


def test_device_defaults_to_cpu_without_gpu_and_can_be_forced(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert tlkit.default_device().type == expected
    assert tlkit.autocast_dtype("cpu") is None
    monkeypatch.setenv("TLKIT_DEVICE", "cpu")
    assert tlkit.default_device().type == "cpu"


def test_a_small_demo_run_writes_table_plot_and_numbers(tmp_path, capsys):
    result = run_demo(ks=(2, 10), seeds=(0,), out_dir=tmp_path, finetune_epochs=1,
                      scratch_epochs=5)
    printed = capsys.readouterr().out
    assert "raw pixels + logistic regression" in printed and "k=10" in printed
    assert "standard error" in printed and "what the runs show" in printed
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["ks"] == [2, 10] and len(saved["accuracy"]) == 4
    for by_k in saved["accuracy"].values():
        assert all(0.0 <= a <= 1.0 for k in ("2", "10") for a in by_k[k])
    png = (tmp_path / "demo_data_efficiency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # Frozen ImageNet features are a real signal: with 10 labels per class they classify well.
    features = next(m for m in result["accuracy"] if "features" in m)
    assert result["accuracy"][features][10][0] >= 0.85


def test_the_demo_draws_what_load_dataset_draws_and_seeds_in_parallel_match_one_by_one(
        tmp_path, capsys):
    from tlkit.teach.demo_tasks import _chosen, digits_task, faces_task

    pool = faces_task().pool
    for seed, k in ((0, 2), (3, 25)):
        drawn = tlkit.load_dataset("faces", split="train", seed=seed, k_per_class=k)
        assert (pool.images[_chosen(pool, k=k, seed=seed)] == drawn.images).all()
    # Two seeds run in two forked workers (on Linux with 2+ cores); each must give what it
    # gives alone.
    both = run_digits_demo(ks=(1,), seeds=(0, 1), out_dir=tmp_path, scratch_epochs=2)
    alone = run_digits_demo(ks=(1,), seeds=(1,), out_dir=tmp_path, scratch_epochs=2)
    capsys.readouterr()
    assert len(both["accuracy"]) == 3 and digits_task().num_classes == 10
    for method, by_k in alone["accuracy"].items():
        assert both["accuracy"][method][1][1] == pytest.approx(by_k[1][0], abs=0.011)
    saved = json.loads((tmp_path / "demo_digits.json").read_text())
    assert set(saved["summary"][next(iter(saved["summary"]))]["1"]) >= {"mean", "std", "se"}


def test_the_text_demo_compares_transfer_with_scratch_on_unseen_words(tmp_path, capsys):
    pytest.importorskip("transformers")
    from tlkit.teach.demo_text import METHODS, run_text_demo

    result = run_text_demo(ks=(5, 50), seeds=(0,), out_dir=tmp_path)
    printed = capsys.readouterr().out
    assert "held-out words" in printed and "k=50" in printed
    saved = json.loads((tmp_path / "demo_text.json").read_text())
    assert saved["ks"] == [5, 50] and set(saved["accuracy"]) == set(METHODS)
    assert (tmp_path / "demo_text_data_efficiency.png").read_bytes().startswith(b"\x89PNG")
    scratch, features = (result["accuracy"][m][50][0] for m in (METHODS[0], METHODS[2]))
    # Pretrained features know words they were not shown; n-grams only know spellings.
    assert features >= 0.75 and features - scratch >= 0.1


def test_table_shows_mean_and_standard_error_over_seeds():
    result = {"ks": [2], "seeds": [0, 1], "accuracy": {"m": {2: [0.5, 0.7]}},
              "seconds_per_run": {"m": 1.25}}
    table = format_table(result)
    # sample std 0.1414, standard error 0.1414 / sqrt(2) = 0.100
    assert "0.600 ± 0.100" in table and "1.25" in table and "2 seeds" in table
    assert "standard error" in table


def test_what_the_runs_show_is_computed_from_the_runs():
    seeds = list(range(4))
    result = {"ks": [2, 5], "seeds": seeds, "accuracy": {
        "a + logistic regression": {2: [0.9, 0.92, 0.91, 0.93], 5: [0.9, 0.7, 0.95, 0.6]},
        "b + logistic regression": {2: [0.6, 0.62, 0.61, 0.63], 5: [0.8, 0.81, 0.79, 0.8]}}}
    text = " ".join(" ".join(what_the_runs_show(result)).split())  # undo the line wrapping
    assert "best: a at k=2; b at k=5." in text
    assert "k=2 +0.300 ± 0.000 over b (> 2 SE)" in text
    assert "± 0.085 over a (within 2 SE)" in text  # b − a per seed: -0.1, 0.11, -0.16, 0.2
    assert "Widest spread over seeds: a at k=5" in text
