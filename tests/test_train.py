"""tlkit.fit: it learns, records, checkpoints, resumes exactly, and warns on slow CPUs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tlkit
import tlkit.train

JOB = Path(__file__).with_name("resume_job.py")


def blobs(n: int = 200, seed: int = 0):
    """Two Gaussian blobs in 10 dimensions: a problem a linear model solves."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 10, generator=g) + 2.5 * (y[:, None] * 2 - 1) * torch.ones(10) / 3
    return x, y


def linear(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(),
                               torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))


def test_fit_learns_and_records_every_epoch():
    train, val = blobs(200, 0), blobs(100, 1)
    history = tlkit.fit(linear(), train, val_data=val, epochs=5, lr=0.05, progress=False,
                        device="cpu")
    assert len(history) == 5 and history["epoch"] == [1, 2, 3, 4, 5]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"} <= \
        set(history.records[0])
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] >= 0.9
    assert "5 epochs" in repr(history)


def test_evaluate_counts_correct_predictions():
    x, y = blobs(50)
    model = torch.nn.Linear(10, 2)
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
        loss = torch.nn.functional.cross_entropy(model(x), y).item()
    metrics = tlkit.evaluate(model, (x, y), batch_size=7, device="cpu")
    assert metrics["acc"] == pytest.approx(expected)
    assert metrics["loss"] == pytest.approx(loss, rel=1e-5)


def test_same_seed_same_weights_different_seed_different():
    runs = []
    for seed in (3, 3, 4):
        model = linear(0)
        tlkit.fit(model, blobs(), epochs=2, seed=seed, progress=False, device="cpu")
        runs.append(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(runs[0].values(), runs[1].values()))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0].values(), runs[2].values()))


def test_interrupt_then_resume_equals_one_straight_run(tmp_path):
    straight = linear(0)
    tlkit.fit(straight, blobs(), epochs=4, lr=0.05, scheduler="cosine", progress=False,
              device="cpu")

    def ctrl_c(epoch, step, loss):
        if (epoch, step) == (2, 3):
            raise KeyboardInterrupt  # a learner stopping the cell mid-epoch

    with pytest.raises(KeyboardInterrupt):
        tlkit.fit(linear(0), blobs(), epochs=4, lr=0.05, scheduler="cosine",
                  checkpoint_dir=tmp_path, progress=False, device="cpu", on_batch=ctrl_c)
    # A new process would start from a fresh model: the checkpoint must hold everything.
    resumed = linear(0)
    history = tlkit.fit(resumed, blobs(), epochs=4, lr=0.05, scheduler="cosine",
                        checkpoint_dir=tmp_path, resume=True, progress=False, device="cpu")
    assert history["epoch"] == [1, 2, 3, 4]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    # Starting a new run over the old checkpoint says so instead of silently replacing it.
    with pytest.warns(UserWarning, match="will be overwritten.*resume=True"):
        tlkit.fit(linear(0), blobs(), epochs=1, checkpoint_dir=tmp_path, progress=False,
                  device="cpu")


def test_sigkill_in_the_middle_of_an_epoch_then_resume_gives_identical_weights(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    ref = tmp_path / "reference.pt"
    subprocess.run([sys.executable, JOB, tmp_path / "ref_ckpt", ref, tmp_path / "p0", "0", "0"],
                   check=True, env=env, timeout=120)

    ckpt, progress, out = tmp_path / "ckpt", tmp_path / "progress", tmp_path / "resumed.pt"
    job = subprocess.Popen([sys.executable, JOB, ckpt, out, progress, "0", "0.03"], env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait for: epoch index 2, a few batches in
            text = progress.read_text() if progress.exists() else ""
            if text and tuple(map(int, text.split())) >= (2, 5):
                break
            assert job.poll() is None, "the job ended before it could be interrupted"
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        job.kill()
    assert job.returncode == -signal.SIGKILL and not out.exists()
    saved = torch.load(ckpt / "last.pt", weights_only=False)
    assert saved["epoch"] == 1  # epochs 0 and 1 were saved; epoch 2 was cut off

    subprocess.run([sys.executable, JOB, ckpt, out, progress, "1", "0"], check=True, env=env,
                   timeout=120)
    reference, resumed = torch.load(ref), torch.load(out)
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key


def test_frozen_parameters_never_reach_the_optimizer():
    model = tlkit.get_backbone("mobilenet_v3_small", weights=None, num_classes=2)
    tlkit.freeze(model)
    body = {k: v.clone() for k, v in model.blocks.state_dict().items()}
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    seen = []

    def optimizer(groups):
        seen.extend(groups)
        return torch.optim.SGD(groups, momentum=0.9)

    tlkit.fit(model, (x, y), epochs=1, optimizer=optimizer, progress=False, device="cpu")
    assert [g["name"] for g in seen] == ["head"]
    for k, v in model.blocks.state_dict().items():
        assert torch.equal(v, body[k]), k  # weights and batch-norm statistics alike


def test_cpu_training_warns_with_an_epoch_estimate(monkeypatch):
    monkeypatch.setattr(tlkit.train, "CPU_WARNING_SECONDS", 0.0)
    with pytest.warns(tlkit.CPUTrainingWarning, match=r"about \d+ s per epoch \(7 batches\)"):
        tlkit.fit(linear(), blobs(200), epochs=1, batch_size=30, progress=False, device="cpu")


def test_a_diverging_run_stops_with_advice():
    x, y = blobs()
    with pytest.raises(FloatingPointError, match="learning rate is probably too high"):
        tlkit.fit(linear(), (x * 1e4, y), epochs=3, lr=1e6, progress=False, device="cpu")


def test_cosine_schedule_anneals_the_rate():
    history = tlkit.fit(linear(), blobs(), epochs=4, lr=0.1, scheduler="cosine",
                        progress=False, device="cpu")
    rates = history["lr"]
    assert rates == sorted(rates, reverse=True) and rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_bad_arguments_explain_themselves(tmp_path):
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        tlkit.fit(linear(), blobs(), epochs=0)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        tlkit.fit(linear(), blobs(), resume=True)
    with pytest.raises(ValueError, match="optimizer must be"):
        tlkit.fit(linear(), blobs(), optimizer="lbfgs", progress=False, device="cpu")
    with pytest.raises(TypeError, match="Dataset or a tuple"):
        tlkit.fit(linear(), [1, 2, 3], progress=False, device="cpu")
    with pytest.raises(ValueError, match="no transform.*weights.transforms"):
        tlkit.fit(linear(), tlkit.load_dataset("faces"), progress=False, device="cpu")


def test_fine_tune_trains_the_head_first_then_the_chosen_blocks():
    x = torch.randn(16, 3, 32, 32)
    y = torch.tensor([0, 1] * 8)
    model = tlkit.get_backbone("resnet18", weights=None, num_classes=2)
    early = {k: v.clone() for k, v in model.blocks[0].state_dict().items()}
    late = {k: v.clone() for k, v in model.blocks[4].state_dict().items()}
    history = tlkit.fine_tune(model, (x, y), freeze_epochs=1, epochs=2, unfreeze_blocks=1,
                              lr=1e-2, batch_size=8, progress=False, device="cpu")
    assert len(history) == 3 and history.marks == {"unfreeze": 1}
    assert history["lr"][0] == pytest.approx(1e-2) and history["lr"][-1] == pytest.approx(5e-3)
    assert all(torch.equal(v, early[k]) for k, v in model.blocks[0].state_dict().items())
    assert not all(torch.equal(v, late[k]) for k, v in model.blocks[4].state_dict().items())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_uses_mixed_precision_and_channels_last():
    model = tlkit.get_backbone("resnet18", weights=None, num_classes=2)
    dtype = tlkit.autocast_dtype("cuda")
    assert dtype in (torch.bfloat16, torch.float16)
    seen = {}
    hook = model.blocks[0].register_forward_hook(
        lambda m, i, o: seen.update(dtype=o.dtype, cl=i[0].is_contiguous(
            memory_format=torch.channels_last)))
    x, y = torch.randn(64, 3, 64, 64), torch.arange(64) % 2
    history = tlkit.fit(model, (x, y), epochs=3, lr=0.01, progress=False, device="cuda")
    hook.remove()
    assert seen["dtype"] == dtype and seen["cl"]
    assert history["train_loss"][-1] < history["train_loss"][0]
