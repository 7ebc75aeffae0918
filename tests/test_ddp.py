"""fit under torchrun: two real CPU processes (gloo) train as one process with twice the batch.

The runs launch ``python -m torch.distributed.run`` on tests/ddp_job.py, as a user would launch
their own script; the processes talk over 127.0.0.1 only.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import tlkit
from tlkit.learn import distributed

JOB = Path(__file__).with_name("ddp_job.py")
RANKS, BATCH, EPOCHS = 2, 8, 2  # 64 examples: 4 steps an epoch for each rank


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out: Path, *args: str, ranks: int | None = RANKS):
    """Start the job under torchrun with ``ranks`` processes, or alone (``ranks=None``)."""
    launcher = [] if ranks is None else [
        "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}"]
    job = subprocess.Popen([sys.executable, *launcher, str(JOB), str(out), *args],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    return job, out, ranks or 1


def _results(started) -> list[dict]:
    """Each rank's results, once the job has finished well."""
    job, out, ranks = started
    output, _ = job.communicate(timeout=240)
    assert job.returncode == 0, output[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(ranks)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 2-epoch torchrun, the one-process reference with the doubled batch
    (alongside: it is quick), and a torchrun stopped after epoch 1 then resumed to epoch 2."""
    tmp = tmp_path_factory.mktemp("ddp")
    whole = _start(tmp / "whole", str(EPOCHS), str(BATCH), "--ckpt", str(tmp / "ckpt_whole"))
    single = _start(tmp / "single", str(EPOCHS), str(RANKS * BATCH), "--reference", ranks=None)
    whole, single = _results(whole), _results(single)
    _results(_start(tmp / "first", "1", str(BATCH), "--ckpt", str(tmp / "ckpt_resumed")))
    resumed = _results(_start(tmp / "resumed", str(EPOCHS), str(BATCH), "--ckpt",
                              str(tmp / "ckpt_resumed"), "--resume"))
    return {"whole": whole, "single": single, "resumed": resumed, "tmp": tmp}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_both_ranks_end_with_identical_weights_that_moved(runs):
    r0, r1 = runs["whole"]
    assert r0["world"] == r1["world"] == RANKS
    # The ranks started from different random weights: DDP gave them rank 0's.
    assert _max_diff(r0["start"], r1["start"]) > 0.01
    assert _max_diff(r0["state"], r1["state"]) <= 1e-7
    assert _max_diff(r0["state"], r0["start"]) > 1e-3  # training did change them
    # No `module.` prefix: the user's own model was trained, not only a wrapper.
    assert set(r0["state"]) == set(r0["start"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_batch_norm_statistics_in_training_mode_end_the_same_on_every_rank(runs):
    r0, r1 = runs["whole"]
    means = [k for k in r0["with_bn"] if k.endswith("running_mean")]
    assert means and all(r0["with_bn"][k].abs().sum() > 0 for k in means)  # they did move
    assert _max_diff(r0["with_bn"], r1["with_bn"]) <= 1e-7


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_ranks_equal_one_process_with_the_doubled_batch(runs):
    (r0, r1), (one,) = runs["whole"], runs["single"]
    assert one["world"] == 1
    assert _max_diff(r0["state"], one["state"]) <= 1e-5
    # Step s of the two ranks together is step s of the single process: the same examples.
    for s in range(EPOCHS * len(r0["seen"]) // (EPOCHS * BATCH)):
        both = r0["seen"][s * BATCH:(s + 1) * BATCH] + r1["seen"][s * BATCH:(s + 1) * BATCH]
        assert sorted(both) == sorted(one["seen"][s * 2 * BATCH:(s + 1) * 2 * BATCH]), s
    # Every rank's history is the same, and its figures are the single process's figures.
    assert r0["history"] == r1["history"]
    for ddp, ref in zip(r0["history"], one["history"], strict=True):
        assert ddp["train_acc"] == ref["train_acc"] and ddp["val_acc"] == ref["val_acc"]
        assert ddp["train_loss"] == pytest.approx(ref["train_loss"], abs=1e-5)
        assert ddp["val_loss"] == pytest.approx(ref["val_loss"], abs=1e-5)  # 21: 11 + 10 shards


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_shards_are_disjoint_and_cover_each_epoch(runs):
    r0, r1 = runs["whole"]
    n = 64
    assert len(r0["seen"]) == len(r1["seen"]) == EPOCHS * n // RANKS
    epochs = []
    for e in range(EPOCHS):
        a = r0["seen"][e * n // 2:(e + 1) * n // 2]
        b = r1["seen"][e * n // 2:(e + 1) * n // 2]
        assert not set(a) & set(b)
        assert sorted(a + b) == list(range(n))
        epochs.append(a)
    assert epochs[0] != epochs[1]  # each epoch is shuffled anew


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_under_torchrun_equals_the_uninterrupted_run_and_only_rank_0_wrote(runs):
    (w0, _), (r0, r1) = runs["whole"], runs["resumed"]
    assert _max_diff(r0["state"], w0["state"]) <= 1e-7
    assert _max_diff(r0["state"], r1["state"]) <= 1e-7
    assert [h["epoch"] for h in r0["history"]] == [1, 2]  # epoch 1 came from the checkpoint
    drop = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
    assert drop(r0["history"]) == drop(w0["history"])
    assert runs["whole"][0]["saved"] == [0, 1] and runs["whole"][1]["saved"] == []
    assert r0["saved"] == [1] and r1["saved"] == []  # the resumed run saved epoch 2 only
    for folder in ("ckpt_whole", "ckpt_resumed"):
        assert sorted(p.name for p in (runs["tmp"] / folder).iterdir()) == ["last.pt"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sync_batchnorm_on_the_cpu_is_refused_under_torchrun_naming_the_fix(runs):
    for rank in runs["whole"]:
        assert "sync_batchnorm=True needs GPUs" in rank["refusal"]
        assert "Drop sync_batchnorm=True" in rank["refusal"]


def test_sync_batchnorm_on_the_cpu_is_refused_in_one_process_before_any_work():
    model = tlkit.small_cnn(num_classes=2, width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="sync_batchnorm=True needs GPUs.*Drop sync_batchnorm"):
        tlkit.fit(model, (torch.randn(8, 3, 8, 8), torch.arange(8) % 2), sync_batchnorm=True,
                  device="cpu", progress=False)
    assert _max_diff(model.state_dict(), before) == 0


def test_one_process_is_not_distributed(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1
    assert distributed.launched() is None
    ranks, device = distributed.join(device=torch.device("cpu"), sync_batchnorm=False)
    assert (ranks.rank, ranks.world, ranks.main, device) == (0, 1, True, torch.device("cpu"))
    model = nn.Linear(2, 2)
    assert ranks.wrap(model) is model and ranks.total(1.5, 3) == [1.5, 3]


def test_sync_batchnorm_swaps_the_layers_only_while_training_and_keeps_what_they_learned():
    # SyncBatchNorm without a process group normalises like BatchNorm, so the swap can be
    # watched on a CPU; a world of 2 is what switches it on.
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    originals = [model[1], model[2][0]]
    ranks = distributed.Ranks(device=torch.device("cpu"), rank=0, world=2)
    with ranks.synced_batchnorm(model, on=True):
        assert [type(m) for m in (model[1], model[2][0])] == [nn.SyncBatchNorm] * 2
        model.train()(torch.randn(8, 3, 5, 5) + 3)
    assert model[1] is originals[0] and model[2][0] is originals[1]
    assert originals[0].num_batches_tracked.item() == 1
    assert originals[0].running_mean.abs().sum() > 0  # the statistics it gathered stayed
    with distributed.Ranks(device=torch.device("cpu")).synced_batchnorm(model, on=True):
        assert model[1] is originals[0]  # one process: nothing to synchronise, nothing swapped
