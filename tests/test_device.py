"""The device rule (tlkit/core/device.py): a model goes back where it was, tensors come back on
the CPU; a batch too big for the GPU halves and retries; the epoch estimate on a GPU.

Moving between devices needs a GPU: those tests are marked ``cuda`` and run in
``make gpu-check``. What the rule does on any machine — layout undone, the model put back on
an error, the retry with half the batch — is tested here on the CPU.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import tlkit
import tlkit.learn.guards as guards
from tlkit.core.device import device_of, running_on

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def blobs(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return torch.randn(n, 10, generator=g) + 2.0 * (y[:, None] * 2 - 1), y


class Greedy(nn.Module):
    """A model with batch norm that 'runs out of GPU memory' on batches larger than ``limit``,
    after ``spare`` forward passes that fit (which move weights, optimizer state and
    batch-norm statistics: the retry must undo all three)."""

    def __init__(self, limit: int, spare: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.limit, self.spare, self.calls = limit, spare, []
        self.linear, self.norm = nn.Linear(10, 2), nn.BatchNorm1d(2)

    def forward(self, x):
        self.calls.append(len(x))
        if len(x) > self.limit and len(self.calls) > self.spare:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.norm(self.linear(x))


def test_running_on_undoes_a_layout_change_and_survives_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with running_on(model, torch.device("cpu")):
        model.to(memory_format=torch.channels_last)
        assert not model[0].weight.is_contiguous()
    assert model[0].weight.is_contiguous()
    with pytest.raises(KeyError):
        with running_on(model, torch.device("cpu")):
            model.to(memory_format=torch.channels_last)
            raise KeyError("a failing cell")
    assert model[0].weight.is_contiguous() and device_of(model) == torch.device("cpu")
    assert device_of(nn.ReLU()) == torch.device("cpu")  # no tensors: the CPU


@pytest.mark.parametrize("spare", [0, 1, 2])  # 2: the first epoch's validation runs out
def test_a_batch_too_big_for_the_gpu_halves_and_gives_the_run_a_smaller_batch_would(spare):
    data, val = blobs(64), blobs(32, 1)
    greedy = Greedy(limit=8, spare=spare)  # spare: steps that fit before the first failure
    with pytest.warns(UserWarning) as caught:
        history = tlkit.fit(greedy, data, val_data=val, epochs=2, lr=0.01, batch_size=32,
                            optimizer="adam", progress=False, device="cpu")
    said = [str(w.message) for w in caught if "GPU memory" in str(w.message)]
    assert len(said) == 2
    assert "batch_size=32 does not fit" in said[0] and "batch_size=16" in said[0]
    assert "batch_size=16 does not fit" in said[1] and "batch_size=8" in said[1]
    # The retry starts from the weights, Adam's state and the batch-norm statistics the run
    # began with: it is exactly the run that asked for batch_size=8.
    direct = Greedy(limit=8)
    expected = tlkit.fit(direct, data, val_data=val, epochs=2, lr=0.01, batch_size=8,
                         optimizer="adam", progress=False, device="cpu")
    assert history["train_loss"] == expected["train_loss"]
    assert history["val_acc"] == expected["val_acc"]
    for name, value in direct.state_dict().items():
        assert torch.equal(greedy.state_dict()[name], value), name
    assert set(greedy.calls[-20:]) == {8}


def test_out_of_memory_that_halving_cannot_fix_says_what_to_do_and_keeps_the_weights():
    model = Greedy(limit=0)  # not even one image fits
    before = model.linear.weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(torch.cuda.OutOfMemoryError) as err:
            tlkit.fit(model, blobs(16), epochs=1, batch_size=4, progress=False, device="cpu")
    assert "batch_size=1" in str(err.value) and "smaller images" in str(err.value)
    assert torch.equal(model.linear.weight, before)

    class LaterGreedy(Greedy):  # fits in epoch 1, runs out in epoch 2: no silent retry then
        def forward(self, x):
            self.calls.append(len(x))
            if len(self.calls) > 6:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
            return self.norm(self.linear(x))

    model = LaterGreedy(limit=100)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="batch_size=8"):
        tlkit.fit(model, blobs(32), epochs=3, batch_size=8, lr=0.1, progress=False,
                  device="cpu")
    # The weights as epoch 2 began (after epoch 1's four steps), not half an epoch.
    replay = Greedy(limit=100)
    tlkit.fit(replay, blobs(32), epochs=1, batch_size=8, lr=0.1, progress=False, device="cpu")
    for name, value in replay.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_the_gpu_epoch_estimate_leaves_out_the_first_step(monkeypatch):
    monkeypatch.setattr(guards, "GPU_WARNING_SECONDS", 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guards.estimate_epoch(0, 5.0, 5.0, 10, 3, on_gpu=True)  # cuDNN's kernel search
        guards.estimate_epoch(1, 6.0, 5.0, 10, 3, on_gpu=True)
    with pytest.warns(tlkit.SlowTrainingWarning, match=r"GPU: about 14 s per epoch \(10 batches"
                                                       r"\), 0\.7 min for the 3 epoch"):
        guards.estimate_epoch(2, 7.0, 5.0, 10, 3, on_gpu=True)  # 5 s + 9 steps × 1 s
    # On the CPU the first two steps time it, as before; a CPU warning is a slow warning too.
    monkeypatch.setattr(guards, "CPU_WARNING_SECONDS", 10.0)
    with pytest.warns(tlkit.CPUTrainingWarning, match=r"about 30 s per epoch \(10 batches\)"):
        guards.estimate_epoch(1, 6.0, 5.0, 10, 3, on_gpu=False)
    assert issubclass(tlkit.CPUTrainingWarning, tlkit.SlowTrainingWarning)


# --- on a GPU: every function that takes device= puts the model back -----------------------

@pytest.mark.cuda
@cuda
def test_every_tlkit_call_leaves_the_model_where_it_was_and_returns_cpu_tensors():
    model = tlkit.get_backbone("resnet18", weights=None, num_classes=2)
    images = tlkit.load_dataset("faces", split="train", transform=model.weights.transforms(
        size=64), k_per_class=4)
    x, y = tlkit.extract_features(model, images, device="cuda", cache=False, progress=False)
    assert x.device.type == "cpu" and device_of(model).type == "cpu"
    assert model.head(x).shape == (len(images), 2)  # lesson 01's ImageNet-guesses cell
    tlkit.fit(model, images, epochs=1, batch_size=4, progress=False, device="cuda")
    assert device_of(model).type == "cpu"
    assert all(p.is_contiguous() for p in model.parameters())  # channels_last undone
    assert tlkit.evaluate(model, images, device="cuda")["acc"] >= 0
    tlkit.adapt_batchnorm(model, images, device="cuda")
    tlkit.latency(model, size=64, device="cuda")
    assert device_of(model).type == "cpu"
    # A model the learner put on the GPU stays there.
    model.cuda()
    tlkit.fit(model, images, epochs=1, batch_size=4, progress=False, device="cuda")
    tlkit.evaluate(model, images)
    assert device_of(model).type == "cuda"
    features = tlkit.extract_features(model, images, cache=False, progress=False).x
    assert features.device.type == "cpu"


@pytest.mark.cuda
@cuda
def test_text_encoder_on_the_gpu_returns_cpu_embeddings():
    encoder = tlkit.get_text_encoder("all-minilm-l6-v2").cuda()
    emb = encoder.encode(["a good film", "a bad film"])
    assert emb.device.type == "cpu" and emb.shape == (2, 384)
    assert device_of(encoder).type == "cuda"


@pytest.mark.parametrize("layout", ["v2", "v1", "v1-namespaced", "unlimited", "none"])
def test_the_cpu_quota_of_a_container_caps_the_threads(tmp_path, monkeypatch, layout):
    # Binder gives 1 CPU on a many-core host: the quota, not os.cpu_count(), is what counts.
    from tlkit.core import device
    root, procs = tmp_path / "cgroup", tmp_path / "self_cgroup"
    if layout == "v2":
        (root / "user" / "pod").mkdir(parents=True)
        (root / "user" / "pod" / "cpu.max").write_text("150000 100000\n")
        procs.write_text("0::/user/pod\n")
    elif layout in ("v1", "v1-namespaced"):
        where = root / "cpu" / ("" if layout == "v1-namespaced" else "kubepods/pod")
        where.mkdir(parents=True)
        (where / "cpu.cfs_quota_us").write_text("100000\n")
        (where / "cpu.cfs_period_us").write_text("100000\n")
        # Inside a cgroup namespace /proc/self/cgroup names the host's path, the files sit at root.
        procs.write_text("4:memory:/kubepods/pod\n2:cpu,cpuacct:/kubepods/pod\n0::/\n")
    elif layout == "unlimited":
        root.mkdir()
        (root / "cpu.max").write_text("max 100000\n")
        procs.write_text("0::/\n")
    expected = {"v2": 1.5, "v1": 1.0, "v1-namespaced": 1.0, "unlimited": None, "none": None}
    assert device._cgroup_cpu_quota(str(procs), str(root)) == expected[layout]

    monkeypatch.setattr(device, "_cgroup_cpu_quota", lambda: expected[layout])
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert device.available_cpus() == {"v2": 1, "v1": 1, "v1-namespaced": 1}.get(layout, 16)


BLAS_PROBE = """
import json, tlkit
{call}
import scipy.linalg, sklearn.linear_model  # SciPy's own OpenBLAS loads only now
from threadpoolctl import threadpool_info
import torch
print(json.dumps({{"blas": [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
                            and "torch" not in i["filepath"].split("/")],
                  "torch": torch.get_num_threads()}}))
"""


def _blas_threads(call: str, **env: str) -> dict:
    import json, os, subprocess, sys
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", BLAS_PROBE.format(call=call)], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 or more cores")
def test_setup_runs_numpy_and_scipy_blas_on_one_thread_and_keeps_torch_on_every_cpu():
    from tlkit.core.device import available_cpus
    before = _blas_threads("")
    assert before["blas"] and max(before["blas"]) > 1   # without setup: one thread per core
    after = _blas_threads("tlkit.setup(quiet=True)")
    assert after["blas"] and set(after["blas"]) == {1}  # NumPy's and SciPy's, loaded after too
    assert after["torch"] == available_cpus()
    chosen = _blas_threads("tlkit.setup(quiet=True)", OPENBLAS_NUM_THREADS="2")
    assert set(chosen["blas"]) == {2}                    # the learner's own setting wins
