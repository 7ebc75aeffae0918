"""tlkit — the helper library of the transfer-learning course.

    import tlkit
    model = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", num_classes=2)
    train = tlkit.load_dataset("faces", split="train", k_per_class=5,
                               transform=model.weights.transforms(size=96))
    tlkit.fine_tune(model, train, epochs=3)
"""
from ._dataset import ArrayImages, FileImages, ImageDataset
from .adapt import adapt_batchnorm
from .backbones import Backbone, backbone_weights, get_backbone, list_backbones
from .course import Setup, seed_everything, setup
from .data import few_shot, list_datasets, load_dataset
from .doctor import doctor
from .device import autocast_dtype, default_device, environment, on_binder, on_colab
from .download import ChecksumError, DownloadError, download
from .features import Features, extract_features
from .finetune import fine_tune
from .folder import image_folder
from .measure import latency, peak_memory_megabytes, weights_megabytes
from .quiz import Quiz, quiz
from .scratch import small_cnn
from .sgd import sgd_step
from .surgery import (Summary, count_parameters, freeze, freeze_to, layer_groups, param_groups,
                      replace_head, set_batchnorm, summary, unfreeze, unfreeze_last)
from .train import CPUTrainingWarning, History, evaluate, fit
from .viz import plot_data_efficiency, plot_history, show_images
from .weights import Weights, WeightsNotAvailable
from .widgets import UnfreezeExplorer, unfreeze_explorer

__version__ = "0.1.0"

__all__ = [
    "Quiz", "UnfreezeExplorer", "adapt_batchnorm", "latency", "peak_memory_megabytes", "quiz",
    "unfreeze_explorer", "weights_megabytes", "Setup", "seed_everything", "setup", "doctor",
    "ArrayImages", "Backbone", "CPUTrainingWarning", "ChecksumError", "DownloadError",
    "FileImages", "Features", "History", "ImageDataset", "Summary", "Weights",
    "WeightsNotAvailable", "autocast_dtype", "backbone_weights", "count_parameters",
    "default_device", "download", "environment", "evaluate", "extract_features", "few_shot",
    "fine_tune", "fit", "freeze", "freeze_to", "get_backbone", "image_folder", "layer_groups",
    "list_backbones", "list_datasets", "load_dataset", "on_binder", "on_colab",
    "param_groups", "plot_data_efficiency", "plot_history", "replace_head", "set_batchnorm",
    "sgd_step", "show_images", "small_cnn", "summary", "unfreeze", "unfreeze_last",
]
