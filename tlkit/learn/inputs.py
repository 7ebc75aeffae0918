"""What ``fit`` and ``evaluate`` accept, checked before the first step.

Data is a ``Dataset`` of ``(tensor, label)`` or cached features as a tuple ``(x, y)``. The
checks here turn the usual mix-ups — PIL images without a transform, labels past the head's
width, features given to a whole network, a head of the wrong width — into one clear error
before any weight changes, instead of an index error deep inside ``cross_entropy``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.checks import describe, first_line
from ..models.backbone import Backbone

__all__ = ["Data", "as_dataset", "batches", "check_model", "check_labels", "forward",
           "explain_forward_error", "embeds_tokens", "gives_tokens", "untransformed_hint"]

Data = torch.utils.data.Dataset | tuple[torch.Tensor, torch.Tensor]


def as_dataset(data: Data, *, name: str = "data", labelled: bool = True,
               token_ids: bool = False) -> torch.utils.data.Dataset:
    """``data`` as a non-empty Dataset; a tuple ``(x, y)`` becomes a TensorDataset.

    ``labelled=False``: the labels are ignored (batch-norm adaptation), so any y will do.
    ``token_ids=True``: the model embeds tokens, so x may be int64 token ids (N, L).
    """
    from .features import Features  # here: features.py itself imports this module

    if isinstance(data, Features):
        data = (data.x, data.y)
    if isinstance(data, torch.utils.data.DataLoader):
        raise TypeError(f"{name} is a DataLoader: pass its data set ({name}.dataset) and set "
                        f"batch_size= here; tlkit builds the loader (shuffling, seeding) itself")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(t, (torch.Tensor, np.ndarray)) for t in data):
        x, y = (torch.as_tensor(t) for t in data)
        if x.dim() == 0 or y.dim() == 0:
            raise ValueError(f"{name} must be (x, y) with one row of x and one label per "
                             f"example, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        if not labelled:
            y = torch.zeros(len(y), dtype=torch.long)
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"{name}'s labels y are {y.dtype}: they must be class indices "
                            f"(an integer tensor); pass y.long()")
        if y.dim() != 1:
            raise ValueError(f"{name}'s labels y must be one class index per example, shape (N,),"
                             f" got {tuple(y.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{name} has {len(x)} examples in x but {len(y)} labels in y")
        # For a model that embeds tokens, int64 rows are token ids (a tokenizer's output);
        # anything else that is not float is raw pixels or a mistake.
        if not x.is_floating_point() and not (token_ids and x.dtype == torch.long and x.dim() == 2):
            raise TypeError(f"{name}'s x is {x.dtype}: models take floating-point inputs. For "
                            f"images use a data set with transform=model.weights.transforms(); "
                            f"for features pass x.float()")
        if x.dtype == torch.float64:
            x = x.float()  # NumPy's default; torch weights are float32
        # Features computed outside torch.no_grad() carry the backbone's graph: training on
        # them would reach back through it (and fail at the second step).
        x = x.detach()
        data = torch.utils.data.TensorDataset(x, y.long())
    elif not isinstance(data, torch.utils.data.Dataset):
        raise TypeError(f"{name} must be a Dataset or a tuple (x, y) of tensors, got "
                        f"{describe(data)}")
    if getattr(data, "transform", True) is None and hasattr(data, "load_image"):
        raise ValueError(f"{data!r} has no transform, so {untransformed_hint(data)}")
    try:
        size = len(data)
    except TypeError:
        raise TypeError(f"{name} must have a length (len(data)); iterable data sets are not "
                        f"supported") from None
    if size == 0:
        raise ValueError(f"{name} is empty: there is nothing to train or evaluate on (check the "
                         f"split, k_per_class or the folder it came from)")
    _check_first_item(data, name, labelled)
    return data


def _check_first_item(data: torch.utils.data.Dataset, name: str, labelled: bool) -> None:
    """One item, looked at before any batch: what every later item should look like."""
    if isinstance(data, torch.utils.data.TensorDataset):
        return  # built from checked tensors above
    item = data[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"{name}[0] is {describe(item)}: a data set for training gives pairs "
                        f"(image or features, label)")
    x, y = item
    if isinstance(x, str):
        raise TypeError(f"{name} gives strings such as {x[:30]!r}, not token ids: load it with "
                        f"transform=encoder.weights.transforms() (the encoder's tokenizer)")
    if type(x).__module__.startswith("PIL"):
        raise TypeError(f"{name} gives PIL images, not tensors: its transform must end with "
                        f"T.ToTensor() and T.Normalize(...), as model.weights.transforms() does")
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name}[0] holds {describe(x)} as its input: it must be a tensor")
    if not torch.as_tensor(x).is_floating_point() and not gives_tokens(data):
        raise TypeError(f"{name} gives {torch.as_tensor(x).dtype} tensors (pixel values 0-255?); "
                        f"models take floats: end the transform with T.ToTensor() and "
                        f"T.Normalize(...) (or ToDtype(torch.float32, scale=True)), as "
                        f"model.weights.transforms() does")
    if labelled:
        try:
            if isinstance(y, (bool, np.bool_, float, str)) or (
                    isinstance(y, torch.Tensor) and (y.is_floating_point() or y.dim())):
                raise TypeError
            int(y)
        except (TypeError, ValueError):
            raise TypeError(f"{name}[0]'s label is {describe(y)}: labels must be class indices "
                            f"(0, 1, 2, ...), e.g. data.classes.index(name)") from None


def embeds_tokens(model: nn.Module) -> bool:
    """True for a model that starts from token ids (an embedding table), e.g. a text encoder."""
    return any(isinstance(m, (nn.Embedding, nn.EmbeddingBag)) for m in model.modules())


def gives_tokens(data: torch.utils.data.Dataset) -> bool:
    """True for text data sets, whose integer items are token ids, not raw pixel values."""
    while isinstance(data, torch.utils.data.Subset):
        data = data.dataset
    return getattr(data, "inputs", None) == "tokens"


def untransformed_hint(data) -> str:
    """What an item of ``data`` is without a transform, and which transform to pass."""
    hint = getattr(data, "untransformed_hint", None)
    return hint() if callable(hint) else ("its items are PIL images, not tensors: load it "
                                          "with transform=model.weights.transforms()")


def batches(loader, *, name: str):
    """The batches of ``loader`` (or of a progress bar around it); a batch that cannot be put
    together says why."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as err:
            if "stack expects each tensor to be equal size" in str(err):
                raise ValueError(f"the images of {name} come in different sizes, so they cannot "
                                 f"form a batch: use a transform that resizes and crops to one "
                                 f"size, e.g. model.weights.transforms() "
                                 f"({first_line(err, 120)})") from None
            raise
        yield batch


def classes_of(data: torch.utils.data.Dataset) -> list[str] | None:
    """The class names ``data`` declares (through Subset and ConcatDataset), if any."""
    if isinstance(data, torch.utils.data.Subset):
        return classes_of(data.dataset)
    if isinstance(data, torch.utils.data.ConcatDataset):
        parts = [classes_of(d) for d in data.datasets]
        if any(p is not None and p != parts[0] for p in parts):
            raise ValueError(f"a ConcatDataset of data sets with different classes "
                             f"({' vs '.join(map(str, dict.fromkeys(map(tuple, parts))))}): label 0 "
                             f"would mean different things; combine data sets of the same classes")
        return parts[0]
    classes = getattr(data, "classes", None)
    return list(classes) if isinstance(classes, (list, tuple)) else None


def labels_of(data: torch.utils.data.Dataset) -> torch.Tensor | None:
    """All labels of ``data`` without loading an image, when it says what they are."""
    if isinstance(data, torch.utils.data.TensorDataset):
        return data.tensors[1]
    if isinstance(data, torch.utils.data.Subset):
        inner = labels_of(data.dataset)
        return inner[torch.as_tensor(data.indices, dtype=torch.long)] if inner is not None else None
    targets = getattr(data, "targets", None)
    if isinstance(targets, (list, np.ndarray, torch.Tensor)) and len(targets) == len(data):
        try:
            return torch.as_tensor(np.asarray(targets), dtype=torch.long)
        except (TypeError, ValueError):
            return None
    return None


def output_width(model: nn.Module) -> int | None:
    """How many class scores ``model`` gives, when its last layer says so."""
    if isinstance(model, Backbone):
        return model.num_classes
    leaves = [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]
    return leaves[-1].out_features if leaves and isinstance(leaves[-1], nn.Linear) else None


def check_model(model) -> None:
    """The model must be a module that ends in class scores (a Backbone with a head)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {describe(model)}")
    if isinstance(model, Backbone) and model.num_classes == 0:
        raise ValueError(f"{model.name} has no head (num_classes=0), so it outputs "
                         f"{model.num_features} features, not class scores. Put one first: "
                         f"tlkit.replace_head(model, len(train_data.classes))")
    if isinstance(model, Backbone):
        first = next((m for m in model.head.modules() if isinstance(m, nn.Linear)), None)
        if first is not None and first.in_features != model.num_features:
            raise ValueError(f"{model.name}'s head takes {first.in_features} features but the "
                             f"backbone gives {model.num_features}: build it as "
                             f"nn.Linear(model.num_features, n), or use tlkit.replace_head(model, n)")


def check_labels(model: nn.Module, data: torch.utils.data.Dataset, *, name: str) -> None:
    """Labels must be class indices the model has an output for; checked before any step."""
    width = output_width(model)
    classes = classes_of(data)
    if classes is not None and width is not None and width != len(classes):
        head = " (the ImageNet head)" if isinstance(model, Backbone) and width == 1000 else ""
        raise ValueError(f"{name} has {len(classes)} classes {classes[:5]}, but the model gives "
                         f"{width} class scores{head}. Build the head for these classes: "
                         f"tlkit.get_backbone(..., num_classes={len(classes)}) or "
                         f"tlkit.replace_head(model, {len(classes)})")
    labels = labels_of(data)
    if labels is None or not len(labels):
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise ValueError(f"{name} has a label {lo}: labels must be class indices 0, 1, 2, ...")
    if width is not None and hi >= width:
        classes = getattr(data, "classes", None)
        fix = (f"num_classes=len(data.classes) (= {len(classes)})" if classes
               else f"num_classes={hi + 1}")
        raise ValueError(f"{name} has labels up to {hi}, but the model gives {width} class "
                         f"score(s) (labels 0 to {width - 1}). Build the head for every class: "
                         f"tlkit.get_backbone(..., {fix}) or tlkit.replace_head(model, {hi + 1})")


def check_batch_labels(y: torch.Tensor, width: int, *, name: str) -> None:
    """The same check for one batch, for data sets that don't list their labels."""
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{name} gives labels of type {y.dtype}: they must be class indices "
                        f"(integers)")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= width):
        raise ValueError(f"{name} has a label {int(y.max()) if int(y.max()) >= width else int(y.min())}"
                         f" but the model gives {width} class score(s), labels 0 to {width - 1}: "
                         f"build the head with num_classes=len(data.classes)")


def explain_forward_error(model: nn.Module, x: torch.Tensor, err: Exception) -> str | None:
    """A learner's explanation of a shape error in the first forward pass, or None."""
    text = str(err)
    shape = tuple(x.shape)
    if "Expected more than 1 value per channel" in text:
        return (f"a batch of {shape[0]} example(s) reached a batch-norm layer in training mode, "
                f"which needs at least 2 to compute statistics: use batch_size >= 2, and a "
                f"data set of at least 2 examples")
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weight is not None and x.is_floating_point() and x.dtype != weight.dtype \
            and ("dtype" in text or "Input type" in text):
        return (f"the data is {x.dtype} but the model's weights are {weight.dtype}: convert "
                f"one of them, e.g. x.to({weight.dtype})")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first_linear = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if x.dim() == 4 and not convs:
        return (f"the model has no convolutions, so it takes feature vectors, but got images "
                f"{shape}. Extract features first (x, y = tlkit.extract_features(backbone, "
                f"data)), or train the whole backbone instead")
    if x.dim() == 2 and convs:
        return (f"the model is a convolutional network but got vectors {shape} (cached "
                f"features?). Train its head on them: tlkit.fit(model.head, (x, y))")
    if "mat1 and mat2" in text and x.dim() == 4 and convs and not any(
            isinstance(m, nn.Flatten) for m in model.modules()):
        return ("the convolutions' output reaches a Linear layer without being flattened: put "
                "nn.Flatten() between the pooling and the Linear")
    if "mat1 and mat2" in text and first_linear is not None and x.dim() == 2 and not convs:
        return (f"the first layer takes {first_linear.in_features} numbers per example but the "
                f"data has {shape[1]}: build it as nn.Linear({shape[1]}, ...) "
                f"(for a backbone's features: model.num_features)")
    return None


def forward(model: nn.Module, x: torch.Tensor, first: bool, net=None) -> torch.Tensor:
    """``net(x)`` (``net``: ``model`` or its DDP wrapper); the first batch's errors explained."""
    net = model if net is None else net  # net: the DDP wrapper under torchrun; model explains
    if not first:
        return net(x)
    try:  # the first batch explains a shape mix-up; later ones need no try
        out = net(x)
    except (RuntimeError, ValueError) as err:
        why = explain_forward_error(model, x, err)
        if why is None:
            raise
        raise ValueError(f"{why}. ({first_line(err, 160)})") from None
    if not torch.is_tensor(out) or out.dim() != 2:
        got = (f"a tensor of shape {tuple(out.shape)}" if torch.is_tensor(out) else
               f"a {type(out).__name__} of {len(out)} outputs" if isinstance(out, (tuple, list))
               else describe(out))
        raise TypeError(f"the model returns {got}; fit and evaluate train and score a model that "
                        f"returns one tensor of class scores, shape (batch, classes)")
    return out
