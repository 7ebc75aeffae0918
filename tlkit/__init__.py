"""tlkit — the helper library of the transfer-learning course.

    import tlkit
    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", num_classes=2)
    train = tlkit.load_dataset("faces", split="train", k_per_class=5,
                               transform=model.weights.transforms(size=96))
    tlkit.fine_tune(model, train, epochs=3)

The package is built in floors, each importing only from those below it:

    teach/   the lessons' set-up cell, plots, widgets, quizzes, measurements, doctor, demo
    learn/   fit and evaluate, history, checkpoints, sgd_step, features, fine_tune, adapt
    models/  the Backbone contract, the registry and factory, weights, surgery, small_cnn,
             text encoders
    data/    data sets by name (images and text), image folders, the downloader
    core/    device, seeds, argument checks

``tlkit.<name>`` is the public API. Names are imported on first use (PEP 562), so
``import tlkit`` costs almost nothing and a lesson pays for torchvision, timm or matplotlib
only when it calls something that needs them.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Where each public name lives: {module: names}.
_API: dict[str, tuple[str, ...]] = {
    "core.device": ("autocast_dtype", "default_device", "environment", "on_binder", "on_colab"),
    "core.seed": ("seed_everything",),
    "data.images": ("ArrayImages", "FileImages", "ImageDataset"),
    "data.catalog": ("few_shot", "list_datasets", "load_dataset"),
    "data.download": ("ChecksumError", "DownloadError", "download"),
    "data.folder": ("image_folder",),
    "data.text": ("TextDataset",),
    "models.backbone": ("Backbone",),
    "models.factory": ("backbone_weights", "get_backbone", "list_backbones"),
    "models.weights": ("BadWeightsFile", "Weights", "WeightsNotAvailable"),
    "models.surgery": ("Summary", "count_parameters", "freeze", "freeze_to", "layer_groups",
                       "param_groups", "replace_head", "set_batchnorm", "summary", "unfreeze",
                       "unfreeze_last"),
    "models.scratch": ("small_cnn", "small_text_model"),
    "models.text": ("TextEncoder", "get_text_encoder", "list_text_encoders"),
    "learn.history": ("History",),
    "learn.checkpoint": ("CheckpointMismatch",),
    "learn.guards": ("CPUTrainingWarning", "SlowTrainingWarning", "TrainingDiverged"),
    "learn.train": ("evaluate", "fit"),
    "learn.features": ("Features", "extract_features"),
    "learn.finetune": ("fine_tune",),
    "learn.sgd": ("sgd_step",),
    "learn.adapt": ("adapt_batchnorm",),
    "teach.course": ("Setup", "setup"),
    "teach.viz": ("plot_data_efficiency", "plot_history", "plot_similarity", "show_augmented",
                  "show_images"),
    "teach.diagnose": ("plot_confusion", "plot_feature_map", "predictions"),
    "teach.widgets": ("UnfreezeExplorer", "unfreeze_explorer"),
    "teach.quiz": ("Quiz", "quiz"),
    "teach.measure": ("activation_megabytes", "gmacs", "latency", "peak_memory_megabytes",
                      "weights_megabytes"),
    "teach.doctor": ("doctor",),
    "teach.variant": ("Variant", "set_student_id", "student_id", "variant"),
}
_WHERE = {name: module for module, names in _API.items() for name in names}
_SUBPACKAGES = ("core", "data", "models", "learn", "teach")

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tlkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__, *_SUBPACKAGES])
