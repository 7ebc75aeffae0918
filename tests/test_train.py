"""tlkit.fit: it learns, records, checkpoints, resumes exactly, and warns on slow CPUs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import tlkit
import tlkit.learn.guards

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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
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
    monkeypatch.setattr(tlkit.learn.guards, "CPU_WARNING_SECONDS", 0.0)
    with pytest.warns(tlkit.CPUTrainingWarning, match=r"about \d+ s per epoch \(7 batches\)"):
        tlkit.fit(linear(), blobs(200), epochs=1, batch_size=30, progress=False, device="cpu")


def test_a_diverging_run_stops_with_advice():
    x, y = blobs()
    with pytest.raises(FloatingPointError, match="learning rate is probably too high"):
        tlkit.fit(linear(), (x * 1e4, y), epochs=3, lr=1e6, progress=False, device="cpu")


def test_cosine_schedule_anneals_the_rate_and_records_the_rate_each_epoch_used():
    import math

    seen = []
    model = linear()
    optimizer = lambda groups: seen.append(torch.optim.SGD(groups)) or seen[-1]  # noqa: E731
    history = tlkit.fit(model, blobs(), epochs=4, lr=0.1, scheduler="cosine", optimizer=optimizer,
                        progress=False, device="cpu",
                        on_batch=lambda e, s, l: seen.append((e, seen[0].param_groups[0]["lr"]))
                        if s == 0 else None)
    used = [lr for e, lr in seen[1:]]
    assert history["lr"] == pytest.approx(used)  # what each epoch really trained with
    assert used == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    assert used[0] == pytest.approx(0.1)


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


def _gradual_run(seed: int, epochs: int = 4):
    torch.manual_seed(seed)  # the random start of the network, then fine_tune's own seed
    model = tlkit.small_cnn(num_classes=2)
    x, y = torch.randn(16, 3, 32, 32), torch.tensor([0, 1] * 8)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="random weights"):
        history = tlkit.fine_tune(model, (x, y), epochs=epochs, gradual=True, lr=1e-2,
                                  batch_size=8, seed=seed, progress=False, device="cpu")
    return model, start, history


def test_gradual_unfreezing_adds_one_group_per_epoch_from_the_top():
    model, start, history = _gradual_run(0, epochs=4)
    trainable = history["trainable"]
    assert trainable[0] == ["head"]                       # the head epoch
    for before, after in zip(trainable[1:4], trainable[2:4]):
        assert set(before) < set(after) and len(after) == len(before) + 1
    assert trainable[1:4] == [["block2", "head"], ["block1", "block2", "head"],
                              ["block0", "block1", "block2", "head"]]
    assert trainable[4] == trainable[3]                   # small_cnn has 3 blocks: all stay
    assert history.marks == {"unfreeze": 1, "+block2": 1, "+block1": 2, "+block0": 3}
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, start[k])}
    assert any(k.startswith("blocks.0.") for k in moved)

    # Stopped before block0 joined, block0 is exactly as it started.
    model, start, history = _gradual_run(0, epochs=2)
    assert history["trainable"][-1] == ["block1", "block2", "head"]
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items()
               if k.startswith("blocks.0."))


def test_gradual_unfreezing_is_reproducible_by_seed_and_validated():
    a, _, ha = _gradual_run(3)
    b, _, hb = _gradual_run(3)
    _, _, hc = _gradual_run(4)
    assert ha["train_loss"] == hb["train_loss"] and ha["train_loss"] != hc["train_loss"]
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    model = tlkit.small_cnn(num_classes=2)
    data = (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(TypeError, match="gradual"):
        tlkit.fine_tune(model, data, gradual="yes", progress=False)
    with pytest.raises(ValueError, match="scheduler"):
        tlkit.fine_tune(model, data, gradual=True, scheduler="cosine", progress=False)


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


# --- a run that blows up stops before the bad step, with its last good weights --------------

def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_an_absurd_learning_rate_stops_and_puts_the_weights_back():
    model = linear()
    start = _weights(model)
    with pytest.raises(tlkit.TrainingDiverged, match="learning rate is probably too high") as err:
        tlkit.fit(model, blobs(), epochs=5, lr=1e4, progress=False, device="cpu")
    assert isinstance(err.value, FloatingPointError)
    assert "lr=1e+03" in str(err.value)  # a concrete rate 10× lower to try
    # It blew up in the first epoch: the weights are the ones it started from, all finite.
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert err.value.history.records == []


class NanAfter(torch.utils.data.Dataset):
    """Blobs whose samples turn to NaN after ``after`` reads: a run that breaks mid-way."""

    def __init__(self, x, y, after: int) -> None:
        self.x, self.y, self.after, self.reads = x, y, after, 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return (self.x[i] * float("nan") if self.reads > self.after else self.x[i]), self.y[i]


def test_a_nan_in_a_later_epoch_keeps_the_finished_epochs_and_their_weights():
    x, y = blobs()
    reference = linear()
    done = tlkit.fit(reference, (x, y), epochs=2, lr=0.05, progress=False, device="cpu")

    model = linear()
    steps_before_nan = []
    with pytest.raises(tlkit.TrainingDiverged, match="epoch 3, step 1: the batch itself holds "
                                                     "NaN.*Check the data or the transform") \
            as err:
        tlkit.fit(model, NanAfter(x, y, after=2 * len(y) + 40), epochs=4, lr=0.05,
                  progress=False, device="cpu",
                  on_batch=lambda e, s, loss: steps_before_nan.append((e, s)))
    # Stopped before the step: the weights are exactly those two clean epochs give.
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference.state_dict()[k]), k
    assert steps_before_nan[-1] == (2, 0)
    assert err.value.history["train_loss"] == done["train_loss"]  # finished epochs kept


def test_a_last_step_that_blows_up_the_weights_is_caught_after_the_epoch():
    x, y = blobs(16)
    model = linear()
    start = _weights(model)
    # One batch per epoch: the only step is also the last, so no later loss would see it.
    with pytest.raises(tlkit.TrainingDiverged, match="after its last step the validation loss"):
        tlkit.fit(model, (x, y), val_data=blobs(16, 1), epochs=1, batch_size=16, lr=1e9,
                  progress=False, device="cpu")
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_a_huge_but_finite_loss_is_caught_too():
    x, y = blobs()
    with pytest.raises(tlkit.TrainingDiverged, match="reached"):
        tlkit.fit(linear(), (x * 1e3, y), epochs=3, lr=10.0, momentum=0.0, progress=False,
                  device="cpu")


# --- data that does not fit the model: one clear error before any weight moves --------------

class Unlabelled(torch.utils.data.Dataset):
    """A data set that does not list its labels: they are only seen batch by batch."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _features(n=20, width=1280):
    return torch.randn(n, width), torch.arange(n) % 2


def _resize_only():
    from torchvision import transforms as T

    return T.Resize(32)  # no ToTensor: the items stay PIL images


def _mixed_sizes():
    import numpy as np
    from torchvision import transforms as T

    small = np.zeros((4, 16, 16), np.uint8)
    photos = tlkit.ArrayImages(small, targets=[0, 1, 0, 1], classes=["a", "b"])
    sizes = iter([16, 24] * 8)  # without a crop, each image keeps its own size
    return photos.with_transform(T.Compose([T.Lambda(lambda im: im.resize((next(sizes),) * 2)),
                                            T.ToTensor()]))


class TwoOutputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(10, 2), torch.nn.Linear(10, 2)

    def forward(self, x):
        return self.a(x), self.b(x)


@pytest.mark.parametrize("make_model, data, error, words", [
    # labels past the head's width
    (lambda: tlkit.small_cnn(num_classes=2), (torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2] * 2)),
     ValueError, r"labels up to 2, but the model gives 2 class score.*num_classes=3"),
    (lambda: torch.nn.Linear(10, 2), (torch.randn(6, 10), torch.arange(6)),
     ValueError, r"labels up to 5.*2 class score"),
    (lambda: torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.ReLU(), torch.nn.Identity()),
     Unlabelled(torch.randn(6, 10), torch.arange(6)), ValueError, r"a label 5.*4 class score"),
    (lambda: torch.nn.Linear(10, 2), (torch.randn(4, 10), torch.tensor([0, -1, 1, 0])),
     ValueError, "a label -1"),
    # no head at all
    (lambda: tlkit.get_backbone("mobilenet_v3_small", weights=None, num_classes=0),
     (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])), ValueError,
     r"no head \(num_classes=0\).*replace_head"),
    # cached features given to the whole network, and images given to a head
    (lambda: tlkit.get_backbone("efficientnet_lite0", weights=None, num_classes=2), _features(),
     ValueError, r"cached features.*tlkit.fit\(model.head"),
    (lambda: torch.nn.Linear(1280, 2), (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])),
     ValueError, r"no convolutions.*extract_features"),
    # a head of the wrong width
    (lambda: torch.nn.Linear(512, 2), _features(), ValueError, r"takes 512 numbers.*has 1280"),
    # labels of the wrong kind, data of the wrong kind
    (lambda: torch.nn.Linear(10, 2), (torch.randn(4, 10), torch.tensor([0.0, 1.0, 0.0, 1.0])),
     TypeError, r"y.long\(\)"),
    (lambda: torch.nn.Linear(10, 2), (torch.randint(0, 9, (4, 10)), torch.tensor([0, 1, 0, 1])),
     TypeError, r"x.float\(\)"),
    (lambda: torch.nn.Linear(10, 2), (torch.randn(4, 10), torch.tensor([0, 1, 0])),
     ValueError, "4 examples in x but 3 labels"),
    (lambda: torch.nn.Linear(10, 2), torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(4, 10), torch.tensor([0, 1, 0, 1]))),
     TypeError, r"DataLoader.*\.dataset"),
    (lambda: torch.nn.Linear(10, 2), (torch.randn(0, 10), torch.zeros(0, dtype=torch.long)),
     ValueError, "empty"),
    (lambda: "a model", blobs(), TypeError, "nn.Module"),
    # a data set whose items are not (tensor, class index)
    (lambda: tlkit.small_cnn(num_classes=2), tlkit.load_dataset("faces", transform=_resize_only()),
     TypeError, r"PIL images.*T.ToTensor\(\)"),
    (lambda: torch.nn.Linear(10, 2), Unlabelled(torch.randn(4, 10), ["cat", "dog"] * 2),
     TypeError, r"label is 'cat'.*classes.index"),
    (lambda: torch.nn.Linear(10, 2), Unlabelled(torch.randn(4, 10), [0.0, 1.0] * 2),
     TypeError, "class indices"),
    (lambda: torch.nn.Linear(10, 2), [torch.randn(10)] * 4, TypeError, "Dataset or a tuple"),
    # images of different sizes that cannot form a batch
    (lambda: tlkit.small_cnn(num_classes=2), _mixed_sizes(), ValueError,
     r"different sizes.*model.weights.transforms\(\)"),
    # a model that does not give one tensor of class scores
    (lambda: TwoOutputs(), blobs(8), TypeError, r"returns a tuple of 2 outputs.*one tensor"),
    # batch norm with one example per batch
    (lambda: torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.BatchNorm1d(4),
                                 torch.nn.Linear(4, 2)), blobs(8), ValueError, "batch_size >= 2"),
])
def test_data_that_does_not_fit_the_model_is_explained_before_any_step(make_model, data, error,
                                                                       words):
    model = make_model()
    before = _weights(model) if isinstance(model, torch.nn.Module) else None
    batch_size = 1 if "batch_size >= 2" in words else 4
    with pytest.raises(error, match=words):
        tlkit.fit(model, data, epochs=1, batch_size=batch_size, progress=False, device="cpu")
    if before is not None:
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_evaluate_checks_the_same_things():
    with pytest.raises(ValueError, match="labels up to 5"):
        tlkit.evaluate(torch.nn.Linear(10, 2), (torch.randn(6, 10), torch.arange(6)))
    with pytest.raises(ValueError, match="empty"):
        tlkit.evaluate(torch.nn.Linear(10, 2), (torch.randn(0, 10), torch.zeros(0).long()))
    with pytest.raises(ValueError, match="no head"):
        tlkit.evaluate(tlkit.get_backbone("mobilenet_v3_small", weights=None, num_classes=0),
                       (torch.randn(2, 3, 32, 32), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        tlkit.evaluate(torch.nn.Linear(10, 2), blobs(), batch_size=0)


def test_an_empty_validation_set_is_refused_before_training():
    model = linear()
    before = _weights(model)
    with pytest.raises(ValueError, match="val_data is empty"):
        tlkit.fit(model, blobs(), val_data=(torch.randn(0, 10), torch.zeros(0).long()),
                  progress=False, device="cpu")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kwargs, error, words", [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"epochs": 2.5}, TypeError, "epochs must be a whole number"),
    ({"seed": "0"}, TypeError, r"seed must be a whole number.*seed=0"),
    ({"seed": -1}, ValueError, "seed must be between 0 and 4294967295, got -1"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
    ({"lr": "1e-3"}, TypeError, "lr must be a number"),
    ({"lr": slice(1e-3, 1e-5)}, ValueError, "0 < lo <= hi"),
    ({"momentum": -0.5}, ValueError, "momentum"),
    ({"num_workers": -1}, ValueError, "num_workers"),
    ({"scheduler": "step"}, ValueError, "scheduler must be None or 'cosine'"),
    ({"optimizer": torch.optim.SGD}, None, None),  # a class is a builder: it works
    ({"device": "gpu"}, ValueError, "device='gpu' is not a device"),
    ({"device": 0}, TypeError, "device must be"),
    ({"on_batch": "print"}, TypeError, "on_batch"),
])
def test_arguments_of_the_wrong_type_or_range_are_named(kwargs, error, words):
    run = lambda: tlkit.fit(linear(), blobs(40), progress=False,  # noqa: E731
                            **{"epochs": 1, "device": "cpu", **kwargs})
    if error is None:
        assert len(run()) == 1
    else:
        with pytest.raises(error, match=words):
            run()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_a_gpu_on_a_machine_without_one_says_so():
    with pytest.raises(RuntimeError, match="no usable CUDA GPU.*device='cpu'"):
        tlkit.fit(linear(), blobs(40), device="cuda", progress=False)


def test_a_checkpoint_folder_that_is_a_file_fails_before_training(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    model = linear()
    before = _weights(model)
    with pytest.raises(NotADirectoryError, match=f"{blocker}.*is a file"):
        tlkit.fit(model, blobs(), checkpoint_dir=blocker, progress=False, device="cpu")
    with pytest.raises(NotADirectoryError, match="cannot be created"):
        tlkit.fit(model, blobs(), checkpoint_dir=blocker / "a", progress=False, device="cpu")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert blocker.read_text() == "not a folder"


# --- resume=True with a checkpoint that belongs to another run ------------------------------

def test_resume_refuses_another_models_checkpoint_naming_the_file_and_ways_out(tmp_path):
    tlkit.fit(linear(), blobs(), epochs=1, checkpoint_dir=tmp_path, progress=False, device="cpu")
    other = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    before = _weights(other)
    with pytest.raises(tlkit.CheckpointMismatch) as err:
        tlkit.fit(other, blobs(), epochs=2, checkpoint_dir=tmp_path, resume=True,
                  progress=False, device="cpu")
    message = str(err.value)
    assert str(tmp_path / "last.pt") in message
    assert "checkpoint_dir=" in message and "resume=False" in message
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())


def test_resume_refuses_another_optimizer_or_other_frozen_layers(tmp_path):
    model = tlkit.small_cnn(num_classes=2)
    data = (torch.randn(16, 3, 16, 16), torch.arange(16) % 2)
    tlkit.fit(model, data, epochs=1, checkpoint_dir=tmp_path, progress=False, device="cpu")
    with pytest.raises(tlkit.CheckpointMismatch, match="another optimizer.*SGD"):
        tlkit.fit(tlkit.small_cnn(num_classes=2), data, epochs=2, optimizer="adam",
                  checkpoint_dir=tmp_path, resume=True, progress=False, device="cpu")
    frozen = tlkit.freeze(tlkit.small_cnn(num_classes=2))
    with pytest.raises(tlkit.CheckpointMismatch, match="other parameters trainable"):
        tlkit.fit(frozen, data, epochs=2, checkpoint_dir=tmp_path, resume=True, progress=False,
                  device="cpu")


def test_resume_from_a_damaged_checkpoint_says_so(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(tlkit.CheckpointMismatch, match="cannot be read.*resume=False"):
        tlkit.fit(linear(), blobs(), epochs=2, checkpoint_dir=tmp_path, resume=True,
                  progress=False, device="cpu")


def test_fine_tune_explains_that_it_spreads_the_rate_itself():
    model = tlkit.small_cnn(num_classes=2)
    with pytest.raises(TypeError, match="one lr.*lr=slice\\(lo, hi\\)"):
        tlkit.fine_tune(model, (torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])),
                        lr=slice(1e-5, 1e-3))


# --- set-ups that would train, but not what the learner meant -------------------------------

def _faces(k=4, size=32):
    model = tlkit.get_backbone("efficientnet_lite0")
    return model, tlkit.load_dataset("faces", k_per_class=k,
                                     transform=model.weights.transforms(size=size))


def test_forgetting_num_classes_is_caught_not_trained_on_the_imagenet_head():
    model, faces = _faces()
    with pytest.raises(ValueError, match=r"2 classes.*1000 class scores \(the ImageNet head\).*"
                                         r"num_classes=2"):
        tlkit.fit(model, faces, progress=False, device="cpu")
    with pytest.raises(ValueError, match="1000 class scores"):
        tlkit.evaluate(model, faces)


def test_the_torchvision_tutorials_model_fc_is_pointed_to_model_head():
    model = tlkit.small_cnn(num_classes=2)
    for name in ("fc", "classifier"):
        with pytest.raises(AttributeError, match=f"model.head, not model.{name}"):
            setattr(model, name, torch.nn.Linear(model.num_features, 3))
    assert model.num_classes == 2


def test_train_and_validation_sets_with_different_classes_are_refused():
    model = tlkit.small_cnn(num_classes=2)
    preprocess = model.weights.transforms()
    faces = tlkit.load_dataset("faces", k_per_class=2, transform=preprocess)
    other = tlkit.ArrayImages(np.zeros((4, 16, 16), np.uint8), targets=[0, 1, 0, 1],
                              classes=["non-face", "face"], transform=preprocess)
    with pytest.raises(ValueError, match=r"classes \['face', 'non-face'\].*\['non-face', 'face'\]"):
        tlkit.fit(model, faces, val_data=other, progress=False, device="cpu")
    mixed = torch.utils.data.ConcatDataset(
        [faces, tlkit.load_dataset("textures", k_per_class=1, transform=preprocess)])
    with pytest.raises(ValueError, match="ConcatDataset of data sets with different classes"):
        tlkit.fit(tlkit.small_cnn(num_classes=3), mixed, progress=False, device="cpu")


def test_a_backbone_head_of_the_wrong_width_is_named_and_nothing_moves():
    model, faces = _faces()
    model.head = torch.nn.Linear(512, 2)
    before = _weights(model)
    with pytest.raises(ValueError, match=r"head takes 512 features.*gives 1280.*"
                                         r"nn.Linear\(model.num_features"):
        tlkit.fit(model, faces, progress=False, device="cpu")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_warnings_for_runs_that_would_teach_the_wrong_lesson():
    softmaxed = torch.nn.Sequential(torch.nn.Linear(10, 2), torch.nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="ends in Softmax.*raw scores"):
        tlkit.fit(softmaxed, blobs(40), progress=False, device="cpu")
    random_frozen = tlkit.freeze(tlkit.get_backbone("mobilenet_v3_small", weights=None,
                                                    num_classes=2))
    with pytest.warns(UserWarning, match="random weights.*nothing is transferred"):
        tlkit.fit(random_frozen, (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])),
                  batch_size=4, progress=False, device="cpu")
    model = tlkit.get_backbone("efficientnet_lite0", num_classes=2)
    resnet_preprocess = tlkit.backbone_weights("resnet18").transforms(size=32)
    faces = tlkit.load_dataset("faces", k_per_class=2, transform=resnet_preprocess)
    with pytest.warns(UserWarning, match=r"normalised with mean \(0.485.*expect \(0.5"):
        tlkit.fit(model, faces, progress=False, device="cpu")


def test_resuming_a_finished_run_says_there_is_nothing_left(tmp_path):
    tlkit.fit(linear(), blobs(), epochs=2, checkpoint_dir=tmp_path, progress=False, device="cpu")
    with pytest.warns(UserWarning, match="already holds 2 finished epoch.*epochs=3"):
        history = tlkit.fit(linear(), blobs(), epochs=2, checkpoint_dir=tmp_path, resume=True,
                            progress=False, device="cpu")
    assert len(history) == 2


def test_features_from_extract_or_with_gradients_train_as_they_are():
    model, faces = _faces()
    features = tlkit.extract_features(model, faces, progress=False)
    head = torch.nn.Linear(model.num_features, 2)
    assert len(tlkit.fit(head, features, epochs=2, progress=False, device="cpu")) == 2
    images = torch.stack([faces[i][0] for i in range(len(faces))])
    with_grad = model.forward_features(images)  # no torch.no_grad(): it carries a graph
    assert with_grad.requires_grad
    history = tlkit.fit(torch.nn.Linear(model.num_features, 2),
                        (with_grad, torch.tensor(faces.targets)), epochs=3, batch_size=4,
                        progress=False, device="cpu")
    assert len(history) == 3


@pytest.mark.parametrize("transform, words", [
    (lambda im: torch.as_tensor(np.array(im.resize((32, 32)))).permute(2, 0, 1),
     r"torch.uint8 tensors.*T.ToTensor\(\)"),
    (lambda im: torch.as_tensor(np.array(im.resize((32, 32))) / 255.0).float(),
     r"colour channels last.*permute\(0, 3, 1, 2\)"),
])
def test_tensors_in_the_wrong_form_are_explained(transform, words):
    faces = tlkit.load_dataset("faces", k_per_class=2, transform=transform)
    with pytest.raises((TypeError, ValueError), match=words):
        tlkit.fit(tlkit.small_cnn(num_classes=2), faces, progress=False, device="cpu")


@pytest.mark.parametrize("model, words", [
    (torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1),
                         torch.nn.Linear(8, 2)), r"nn.Flatten\(\)"),
    (torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1),
                         torch.nn.Flatten(), torch.nn.Linear(8, 2)).double(),
     r"data is torch.float32 but the model's weights are torch.float64"),
])
def test_plain_models_that_cannot_take_the_batch_are_explained(model, words):
    with pytest.raises(ValueError, match=words):
        tlkit.fit(model, (torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])),
                  progress=False, device="cpu")


def test_a_misspelt_fine_tune_argument_fails_before_anything_is_frozen():
    model = tlkit.small_cnn(num_classes=2)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['progres'\]"):
        tlkit.fine_tune(model, (torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])),
                        progres=False)
    assert all(p.requires_grad for p in model.parameters())
