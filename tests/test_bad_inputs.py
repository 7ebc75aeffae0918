"""Awkward and wrong inputs across the public API: each gets an error that names the argument
and the fix, or is handled correctly — never a bare internal error or a silent wrong result.

The other modules' tests cover their own kinds (image folders in test_folder, downloads in
test_download, weights files in test_backbones, fit's data and checkpoints in test_train);
this one covers the arguments every function shares, and the teaching helpers.
"""
from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import tlkit
from tlkit.core.checks import writable_folder


def lite0_random():
    return tlkit.get_backbone("efficientnet_lite0", weights=None, num_classes=2)


# --- numbers of the wrong type or range, everywhere -----------------------------------------

CASES = [
    # (call, error, words the message must contain)
    (lambda: tlkit.load_dataset("faces", k_per_class="5"), TypeError,
     r"k_per_class must be a whole number.*'5' \(str\).*k_per_class=5"),
    (lambda: tlkit.load_dataset("faces", k_per_class=2.5), TypeError, "k_per_class"),
    (lambda: tlkit.load_dataset("faces", k_per_class=True), TypeError, r"True \(bool\)"),
    (lambda: tlkit.load_dataset("faces", k_per_class=0), ValueError, "k_per_class must be >= 1"),
    (lambda: tlkit.load_dataset("faces", seed="0"), TypeError, "seed must be a whole number"),
    (lambda: tlkit.load_dataset("faces", seed=1.5), TypeError, "seed"),
    (lambda: tlkit.load_dataset("faces", seed=-3), ValueError, "seed must be >= 0"),
    (lambda: tlkit.load_dataset("faces", transform="resize"), TypeError, "transform must be callable"),
    (lambda: tlkit.load_dataset("faces", split=0), TypeError, "split must be a string"),
    (lambda: tlkit.load_dataset(["faces"]), ValueError, "Unknown data set"),
    (lambda: tlkit.few_shot(tlkit.load_dataset("faces"), k_per_class="2"), TypeError, "k_per_class"),
    (lambda: tlkit.few_shot([1, 2], k_per_class=2), TypeError, "few_shot takes a tlkit data set"),
    (lambda: tlkit.seed_everything("0"), TypeError, "seed"),
    (lambda: tlkit.setup(seed=None, quiet=True), TypeError, "seed"),
    (lambda: tlkit.get_backbone(None), TypeError, "backbone name must be a string"),
    (lambda: tlkit.get_backbone("resnet18", weights=None, num_classes=True), TypeError,
     "num_classes"),
    (lambda: tlkit.get_backbone("resnet18", weights=None, num_classes="2"), TypeError,
     r"num_classes must be a whole number.*num_classes=2"),
    (lambda: tlkit.get_backbone("resnet18", weights=True), ValueError, "weights must be"),
    (lambda: tlkit.backbone_weights("efficientnet_lite0").transforms(size=0), ValueError,
     "size must be between 1"),
    (lambda: tlkit.backbone_weights("efficientnet_lite0").transforms(size="96"), TypeError,
     "size=96"),
    (lambda: tlkit.freeze_to(lite0_random(), "2"), TypeError, "n must be a whole number"),
    (lambda: tlkit.freeze_to(lite0_random(), 9), ValueError, "has 5 blocks"),
    (lambda: tlkit.unfreeze_last(lite0_random(), 1.5), TypeError, "n must be a whole number"),
    (lambda: tlkit.replace_head(lite0_random(), 2.5), TypeError, "num_classes"),
    (lambda: tlkit.replace_head(lite0_random(), 2, dropout=1.5), ValueError, "dropout"),
    (lambda: tlkit.replace_head(lite0_random(), 2, hidden=0), ValueError, "hidden"),
    (lambda: lite0_random().reset_head(-1), ValueError, "num_classes must be >= 0"),
    (lambda: tlkit.param_groups(lite0_random(), lr=slice(None, 1e-3)), TypeError,
     "slice start"),
    (lambda: tlkit.param_groups(lite0_random(), lr=1e-3, weight_decay=-1), ValueError,
     "weight_decay"),
    (lambda: tlkit.set_batchnorm(lite0_random(), "eval"), ValueError, "'frozen' or 'train'"),
    (lambda: tlkit.small_cnn(num_classes=0), ValueError, "num_classes must be >= 1"),
    (lambda: tlkit.extract_features(lite0_random(), tlkit.load_dataset("faces"), batch_size=0),
     ValueError, "batch_size must be >= 1"),
    (lambda: tlkit.extract_features(lite0_random(), (torch.zeros(2, 1280), torch.tensor([0, 1]))),
     TypeError, "features already"),
    (lambda: tlkit.adapt_batchnorm(lite0_random(), tlkit.load_dataset("faces"), batch_size=1),
     ValueError, "at least 2"),
    (lambda: tlkit.latency(lite0_random(), size=-1), ValueError, "size"),
    (lambda: tlkit.count_parameters("resnet18"), TypeError, "nn.Module"),
    (lambda: tlkit.ArrayImages([[0]], targets=[0], classes=["a"]), TypeError, "NumPy array"),
    (lambda: tlkit.load_dataset("faces").subset([500]), IndexError, "out of range"),
    (lambda: tlkit.load_dataset("faces").subset([0.5]), TypeError, "whole-number indices"),
    (lambda: tlkit.load_dataset("Faces"), ValueError, "Did you mean 'faces'"),
    (lambda: tlkit.load_dataset("texture"), ValueError, "Did you mean 'textures'"),
    (lambda: tlkit.quiz("?", options=["a", "b"], answer="a", explain=""), TypeError,
     "options must map letters"),
    (lambda: tlkit.plot_data_efficiency({"features": {2: []}}), ValueError,
     "accuracy per seed"),
    (lambda: tlkit.extract_features(
        lite0_random(), tlkit.load_dataset("faces", transform=lambda im: im.resize((32, 32)))),
     TypeError, "PIL images"),
]


@pytest.mark.parametrize("call, error, words", CASES, ids=range(len(CASES)))
def test_a_wrong_argument_is_named_with_its_fix(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_integers_of_other_kinds_and_any_case_of_imagenet_are_accepted(monkeypatch):
    import numpy as np

    few = tlkit.load_dataset("faces", k_per_class=np.int64(3), seed=np.int32(1))
    assert few.class_counts() == {"face": 3, "non-face": 3}
    model = tlkit.get_backbone("efficientnet_lite0", weights="ImageNet", num_classes=np.int64(3))
    assert model.num_classes == 3 and model.weights.pretrained


# --- sgd_step -------------------------------------------------------------------------------

def _net_with_grads():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    net(torch.randn(4, 3)).sum().backward()
    return net


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -0.1, "0.1"])
def test_sgd_step_refuses_a_rate_that_would_ruin_the_weights(lr):
    net = _net_with_grads()
    before = net.weight.clone()
    with pytest.raises((ValueError, TypeError), match="lr"):
        tlkit.sgd_step(net.parameters(), lr=lr)
    assert torch.equal(net.weight, before)


def test_a_reused_parameters_generator_is_caught_on_the_second_step():
    net = _net_with_grads()
    params = net.parameters()
    tlkit.sgd_step(params, lr=0.1)
    with pytest.raises(ValueError, match="can be used only once.*list\\(model.parameters\\(\\)\\)"):
        tlkit.sgd_step(params, lr=0.1)
    kept = list(net.parameters())  # the fix works for any number of steps
    before = net.weight.clone()
    tlkit.sgd_step(kept, lr=0.1)
    tlkit.sgd_step(kept, lr=0.1)
    assert torch.allclose(net.weight, before - 0.2 * net.weight.grad)


def test_sgd_step_before_backward_says_to_call_backward():
    net = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="loss.backward\\(\\)"):
        tlkit.sgd_step(net.parameters(), lr=0.1)


def test_sgd_step_takes_a_single_tensor_too():
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.ones(3)
    tlkit.sgd_step(w, lr=0.5)
    assert torch.equal(w.detach(), torch.full((3,), -0.5))


# --- plots and images -----------------------------------------------------------------------

def test_plot_history_with_a_metric_it_does_not_have_lists_what_it_has():
    history = tlkit.fit(torch.nn.Linear(4, 2), (torch.randn(8, 4), torch.arange(8) % 2),
                        epochs=2, progress=False, device="cpu")
    with pytest.raises(ValueError, match="no metric 'val_acc'.*train_loss.*val_data"):
        tlkit.plot_history(history, metrics=["train_loss", "val_acc"])
    with pytest.raises(KeyError, match="no metric 'accuracy'.*train_acc"):
        history["accuracy"]  # noqa: B018
    ax = tlkit.plot_history(history, metrics="train_acc")  # one name as a string
    assert [line.get_label() for line in ax.get_lines()] == ["train_acc"]
    assert all(float(t).is_integer() for t in ax.get_xticks())  # epochs are whole numbers
    with pytest.raises(ValueError, match="no epochs yet"):
        tlkit.plot_history(tlkit.History())
    with pytest.raises(TypeError, match="History that tlkit.fit returns"):
        tlkit.plot_history({"train_loss": [1, 0.5]})


def test_show_images_of_an_empty_set_says_so():
    empty = tlkit.load_dataset("faces").subset([])
    with pytest.raises(ValueError, match="empty"):
        tlkit.show_images(empty)
    with pytest.raises(ValueError, match="n must be >= 1"):
        tlkit.show_images(tlkit.load_dataset("faces"), n=0)
    with pytest.raises(TypeError, match="tlkit data set"):
        tlkit.show_images(torch.zeros(2, 3, 8, 8))


def test_plot_data_efficiency_needs_results():
    with pytest.raises(ValueError, match="results must map each method"):
        tlkit.plot_data_efficiency({})


# --- folders that are files or cannot be written --------------------------------------------

@pytest.fixture
def read_only_folder():
    """A folder nobody may write to, in a place the unprivileged user can reach."""
    parent = Path(tempfile.mkdtemp(prefix="tlkit-ro-"))
    parent.chmod(0o755)
    folder = parent / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH |
                 stat.S_IXOTH)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(parent, ignore_errors=True)


def _as_unprivileged(function) -> str:
    """Run ``function()`` where write permissions apply (root ignores them): as 'nobody' in a
    forked child when this is root. Returns the child's "ok" or the error it raised."""
    if os.geteuid() != 0:
        try:
            function()
            return "ok"
        except Exception as err:  # noqa: BLE001
            return f"{type(err).__name__}: {err}"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, try, report, exit without running pytest's cleanup
        os.close(read)
        try:
            # One thread: the parent's OpenMP pool does not survive fork(), so a parallel
            # torch kernel here would wait for threads that do not exist.
            torch.set_num_threads(1)
            os.setgid(65534)
            os.setuid(65534)
            function()
            answer = "ok"
        except BaseException as err:  # noqa: BLE001
            answer = f"{type(err).__name__}: {err}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


@pytest.mark.skipif(sys.platform != "linux", reason="uses fork and Linux permissions")
def test_a_folder_that_cannot_be_written_is_named_before_any_work(read_only_folder):
    folder = read_only_folder
    answer = _as_unprivileged(lambda: writable_folder(folder / "runs", what="checkpoint_dir",
                                                      fix="Pass another folder."))
    assert answer.startswith("PermissionError") and str(folder / "runs") in answer
    assert "Pass another folder." in answer
    open_folder = folder.parent / "open"
    open_folder.mkdir(mode=0o777)
    open_folder.chmod(0o777)
    assert _as_unprivileged(lambda: writable_folder(open_folder / "runs", what="x", fix="")) \
        == "ok"  # the same call where writing is allowed: the check itself is not the problem


def test_a_feature_cache_that_is_a_file_warns_and_still_gives_the_features(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    model = tlkit.small_cnn(num_classes=2)
    data = tlkit.load_dataset("faces", k_per_class=2, transform=model.weights.transforms())
    with pytest.warns(UserWarning, match=f"{blocker}.*computed but not cached"):
        features = tlkit.extract_features(model, data, cache_dir=blocker, progress=False)
    assert features.x.shape == (4, model.num_features) and features.path is None
    assert blocker.read_text().startswith("a file")


def test_an_unwritable_feature_cache_warns_and_still_gives_the_features(read_only_folder):
    folder = read_only_folder
    model = tlkit.small_cnn(num_classes=2)
    data = tlkit.load_dataset("faces", k_per_class=2, transform=model.weights.transforms())

    def extract():
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            features = tlkit.extract_features(model, data, cache_dir=folder, progress=False)
        assert features.x.shape == (4, model.num_features) and not features.from_cache
        assert any("not cached" in str(w.message) for w in caught), caught

    assert _as_unprivileged(extract) == "ok"


def test_a_damaged_cache_file_is_recomputed_not_trusted(tmp_path):
    model = tlkit.small_cnn(num_classes=2)
    data = tlkit.load_dataset("faces", k_per_class=2, transform=model.weights.transforms())
    first = tlkit.extract_features(model, data, cache_dir=tmp_path, progress=False)
    first.path.write_bytes(b"truncated")
    again = tlkit.extract_features(model, data, cache_dir=tmp_path, progress=False)
    assert not again.from_cache and torch.equal(first.x, again.x)
    torch.save({"x": torch.zeros(3, 7), "y": torch.zeros(3)}, again.path)  # the wrong shape
    third = tlkit.extract_features(model, data, cache_dir=tmp_path, progress=False)
    assert not third.from_cache and torch.equal(first.x, third.x)


def test_a_data_root_that_is_a_file_fails_before_any_download(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="TLKIT_DATA"):
        tlkit.load_dataset("hymenoptera", root=blocker)


# --- more of the same kinds (from a second reading) -----------------------------------------

def test_replace_head_returns_the_model_like_the_other_surgery_functions():
    model = lite0_random()
    assert tlkit.replace_head(model, 3) is model and model.num_classes == 3
    assert tlkit.replace_head(model, 4, hidden=8) is model and model.num_classes == 4


@pytest.mark.parametrize("call, error, words", [
    (lambda: tlkit.load_dataset("faces", transform=lite0_random().weights.transforms),
     TypeError, r"call it, transform=model.weights.transforms\(\)"),
    (lambda: tlkit.ArrayImages(np.zeros((2, 4, 4), np.uint8), targets=[0, 1], classes="ab"),
     TypeError, "classes must be a list"),
    (lambda: tlkit.ArrayImages(np.zeros((2, 4, 4), np.uint8), targets=[0, 1], classes=["a", "a"]),
     ValueError, "more than once"),
    (lambda: tlkit.ArrayImages(np.zeros((2, 4, 4), np.uint8), targets=np.array([[0], [1]]),
                               classes=["a", "b"]), ValueError, r"reshape\(-1\)"),
    (lambda: tlkit.setup(full="False", quiet=True), TypeError, "full=False without quotes"),
    (lambda: tlkit.count_parameters(lite0_random(), trainable="yes"), TypeError, "trainable"),
    (lambda: tlkit.backbone_weights("resnet18").transforms(augment="yes"), TypeError, "augment"),
    (lambda: tlkit.fit(torch.nn.Linear(2, 2), (torch.randn(4, 2), torch.tensor([0, 1, 0, 1])),
                       seed=2**64), ValueError, "seed must be between 0"),
    (lambda: tlkit.latency(torch.nn.Linear(1280, 2)), TypeError, "no convolutions"),
    (lambda: tlkit.gmacs(torch.nn.Linear(1280, 2)), TypeError, "no convolutions"),
    (lambda: tlkit.activation_megabytes("resnet50"), TypeError, "nn.Module"),
    (lambda: tlkit.activation_megabytes(lite0_random(), batch_size=0), ValueError, "batch_size"),
    (lambda: tlkit.plot_data_efficiency({"a": {0: [0.5]}}), ValueError, "k >= 1"),
    (lambda: tlkit.plot_data_efficiency({"a": {"two": [0.5]}}), ValueError, "whole numbers"),
    (lambda: tlkit.sgd_step(torch.nn.Linear(2, 2).state_dict().values(), lr=0.1), ValueError,
     "not model.state_dict"),
    (lambda: tlkit.sgd_step(_net_with_grads().parameters(), lr=0.1, momentum=5), ValueError,
     "momentum"),
])
def test_another_wrong_argument_is_named_with_its_fix(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_subset_takes_a_slice_and_rgba_arrays_come_out_on_white():
    faces = tlkit.load_dataset("faces")
    assert faces.subset(slice(0, 3)).targets == faces.targets[:3]
    rgba = np.zeros((1, 2, 2, 4), np.uint8)  # fully transparent black
    image = tlkit.ArrayImages(rgba, targets=[0], classes=["a"]).load_image(0)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_quiz_answers_in_any_case_and_with_number_keys(capsys):
    q = tlkit.quiz("?", options={"a": "yes", "b": "no"}, answer="a", explain="Because.")
    assert q.check(" A") and not q.check("b")
    numbered = tlkit.quiz("?", options={1: "yes", 2: "no"}, answer=1, explain="Because.")
    assert numbered.check(1) and "Right" in capsys.readouterr().out


def test_sgd_step_takes_a_model_and_refuses_a_nan_gradient_before_any_change():
    net = _net_with_grads()
    before = net.weight.clone()
    tlkit.sgd_step(net, lr=0.1)  # the module itself: its parameters
    assert torch.allclose(net.weight, before - 0.1 * net.weight.grad)
    net.bias.grad[0] = float("nan")
    kept = net.weight.clone()
    with pytest.raises(FloatingPointError, match="no weight was changed"):
        tlkit.sgd_step(net, lr=0.1)
    assert torch.equal(net.weight, kept)


def test_adapt_batchnorm_measures_the_whole_target_set_not_one_class_per_batch():
    # Sorted by class like every tlkit data set: 64 images of one kind, then 64 of another.
    x = torch.cat([torch.zeros(64, 1), torch.full((64, 1), 10.0)]) + 0.1 * torch.randn(128, 1)
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(1))
    tlkit.adapt_batchnorm(model, (x, torch.zeros(128).long()), batch_size=64, device="cpu")
    bn = model[0]
    assert bn.running_mean.item() == pytest.approx(x.mean().item(), abs=0.5)
    assert bn.running_var.item() == pytest.approx(x.var().item(), rel=0.2)  # ~25, not ~0
    # 65 images with batches of 64: the lone last image is left out instead of failing.
    tlkit.adapt_batchnorm(model, (x[:65], torch.zeros(65).long()), batch_size=64, device="cpu")


def test_plots_take_one_seed_json_keys_and_say_which_axes(tmp_path):
    import json

    import matplotlib.pyplot as plt

    one_seed = {"features": {2: 0.8, 10: 0.95, 5: 0.9}}
    from_json = json.loads(json.dumps({"features": {2: [0.8], 10: [0.95], 5: [0.9]}}))
    for results in (one_seed, from_json):
        ax = tlkit.plot_data_efficiency(results)
        assert list(ax.get_lines()[0].get_xdata()) == [2, 5, 10]  # sorted as numbers
        plt.close("all")
    history = tlkit.fit(torch.nn.Linear(4, 2), (torch.randn(8, 4), torch.arange(8) % 2),
                        epochs=2, progress=False, device="cpu")
    _, axes = plt.subplots(1, 2)
    with pytest.raises(TypeError, match=r"ax=axes\[0\]"):
        tlkit.plot_history(history, ax=axes)
    assert tlkit.plot_history(history, metrics=None, ax=axes[0]) is axes[0]
    with pytest.raises(ValueError, match="4 images need 4 axes, got 2"):
        tlkit.show_images(tlkit.load_dataset("faces"), n=4, ax=axes)
    plt.close("all")


def test_show_images_shows_every_class_of_a_sorted_set():
    faces = tlkit.load_dataset("faces")
    titles = [a.get_title() for a in tlkit.show_images(faces, n=4)]
    assert set(titles) == {"face", "non-face"}


def test_the_feature_cache_tells_transforms_apart_and_never_caches_a_random_one(tmp_path):
    from torchvision import transforms as T

    model = tlkit.small_cnn(num_classes=2)
    base = model.weights.transforms()
    faces = tlkit.load_dataset("faces", k_per_class=2)
    upright = faces.with_transform(T.Compose([T.Lambda(lambda im: im), base]))
    flipped = faces.with_transform(T.Compose([T.Lambda(lambda im: im.rotate(180)), base]))
    a = tlkit.extract_features(model, upright, cache_dir=tmp_path, progress=False)
    b = tlkit.extract_features(model, flipped, cache_dir=tmp_path, progress=False)
    assert not b.from_cache and not torch.equal(a.x, b.x)  # same repr, other features
    random = faces.with_transform(model.weights.transforms(augment=True))
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    with pytest.warns(UserWarning, match="random.*not cached"):
        c = tlkit.extract_features(model, random, cache_dir=tmp_path, progress=False)
    assert c.path is None and not c.from_cache
    torch.set_rng_state(state)  # the probe itself does not disturb the caller's random draws


def test_adapt_batchnorm_refuses_one_image_and_changes_nothing():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="at least 2 target images"):
        tlkit.adapt_batchnorm(model, (torch.randn(1, 3, 8, 8), torch.zeros(1, dtype=torch.long)))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model[1].momentum == 0.1
