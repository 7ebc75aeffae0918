"""Tiny stand-ins, in the real file formats, for everything FULL mode downloads.

Each builder returns the bytes of one file exactly as its publisher lays it out (the archive
members, pickles and .mat keys that tlkit's parsers and torchvision read), only with a few small
images per class. Images of one class share a colour (plus noise), so classes are separable.

``build(www, base)`` writes them all into a folder served at ``base`` and returns the manifest
that tests/standins/standins_hook.py applies; ``write_checkpoints`` puts randomly initialised
zoo weights into a torch.hub cache under torchvision's file names.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .standins_hook import MANIFEST_ENV, apply, load_manifest  # noqa: F401 (re-exported)

HERE = Path(__file__).resolve().parent
SIZE = 64  # pixels: the lessons' transforms resize to 128 or 224 anyway

# Counts per split and class. Lesson 01 draws up to 25 training images per class without
# replacement, and lesson 07 keeps 100 SST-2 sentences per class: those set the minimums.
HYMENOPTERA = {"train": {"ants": 25, "bees": 25}, "val": {"ants": 3, "bees": 3}}
EUROSAT_CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"]
EUROSAT_PER_CLASS = 5  # 80/20 per class: 4 train, 1 test
PNEUMONIA = {"train": 8, "val": 4, "test": 4}  # alternating normal / pneumonia
FLOWERS_PER_CLASS = {"trnid": 1, "valid": 1, "tstid": 1}  # 102 classes
CIFAR_PER_BATCH = 10   # one image per class in each of the 5 training batches
CIFAR_TEST = 20
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
SST2 = {"train": 100, "dev": 10}  # per class

# Backbones FULL mode loads with weights="imagenet" (lessons 01, 02, 05, 06; solutions/ and
# tlkit/teach use only efficientnet_lite0, whose weights ship with pip).
FULL_BACKBONES = ("resnet50",)


def _colour(c: int, n: int) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(c / max(n, 1), 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def _pixels(c: int, n: int, i: int, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(1000 * c + i)
    base = np.array(_colour(c, n), dtype=np.int16)
    noise = rng.integers(-40, 41, (size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def jpeg(c: int, n: int, i: int, size: int = SIZE) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels(c, n, i, size)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip archive holding ``members`` ({name: bytes}), as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- the files ------------------------------------------------------------------------------

def hymenoptera_zip(counts=HYMENOPTERA) -> bytes:
    """hymenoptera_data/{train,val}/{ants,bees}/*.jpg, as download.pytorch.org serves it."""
    members = {}
    for split, per_class in counts.items():
        for c, (cls, k) in enumerate(per_class.items()):
            for i in range(k):
                members[f"hymenoptera_data/{split}/{cls}/{cls}_{split}_{i}.jpg"] = jpeg(
                    c, len(per_class), i + (0 if split == "train" else 500))
    return make_zip(members)


def eurosat_zip(classes=EUROSAT_CLASSES, per_class=EUROSAT_PER_CLASS) -> bytes:
    """2750/<Class>/<Class>_<i>.jpg (EuroSAT RGB's layout, 1-based numbering)."""
    return make_zip({f"2750/{cls}/{cls}_{i + 1}.jpg": jpeg(c, len(classes), i)
                 for c, cls in enumerate(classes) for i in range(per_class)})


def pneumoniamnist_npz(counts=PNEUMONIA) -> bytes:
    """MedMNIST's npz: {split}_images (n, 28, 28) uint8 and {split}_labels (n, 1)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in counts.items():
        labels = (np.arange(n) % 2).astype(np.uint8)
        images = np.where(labels[:, None, None] == 1, 170, 70) + rng.integers(-30, 31, (n, 28, 28))
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(n, 1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def flowers102_files(per_class=FLOWERS_PER_CLASS, n_classes: int = 102) -> dict[str, bytes]:
    """102flowers.tgz (jpg/image_XXXXX.jpg), imagelabels.mat ('labels', 1-based classes, one
    per image id) and setid.mat ('trnid', 'valid', 'tstid': 1-based image ids)."""
    from scipy.io import savemat

    labels, ids, images = [], {key: [] for key in per_class}, {}
    for key, k in per_class.items():
        for c in range(n_classes):
            for i in range(k):
                image_id = len(labels) + 1
                labels.append(c + 1)
                ids[key].append(image_id)
                images[f"jpg/image_{image_id:05d}.jpg"] = jpeg(c, n_classes, image_id, 32)

    def mat(**arrays) -> bytes:
        buf = io.BytesIO()
        savemat(buf, arrays)
        return buf.getvalue()

    return {"102flowers.tgz": _tgz(images),
            "imagelabels.mat": mat(labels=np.array([labels], dtype=np.uint8)),
            "setid.mat": mat(**{key: np.array([v], dtype=np.uint16) for key, v in ids.items()})}


def cifar10_files() -> tuple[bytes, dict[str, str]]:
    """cifar-10-python.tar.gz: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta},
    pickled dicts as the original (data: (n, 3072) uint8 rows in CHW order, labels: list).
    Also returns the md5 of each member, which torchvision's CIFAR10 verifies."""
    def batch(name: str, n: int, offset: int) -> bytes:
        labels = [(offset + i) % 10 for i in range(n)]
        data = np.stack([_pixels(c, 10, offset + i, 32).transpose(2, 0, 1).reshape(-1)
                         for i, c in enumerate(labels)])
        return pickle.dumps({"batch_label": name, "labels": labels, "data": data,
                             "filenames": [f"standin_{offset + i}.png" for i in range(n)]},
                            protocol=2)

    members = {f"data_batch_{b}": batch(f"training batch {b} of 5", CIFAR_PER_BATCH,
                                        (b - 1) * CIFAR_PER_BATCH) for b in range(1, 6)}
    members["test_batch"] = batch("testing batch 1 of 1", CIFAR_TEST, 1000)
    members["batches.meta"] = pickle.dumps({"label_names": CIFAR_CLASSES,
                                            "num_cases_per_batch": CIFAR_PER_BATCH,
                                            "num_vis": 3072}, protocol=2)
    archive = _tgz({f"cifar-10-batches-py/{name}": data for name, data in members.items()})
    return archive, {name: md5(data) for name, data in members.items()}


POSITIVE = ["a charming , funny film", "a gem of a movie", "wise and moving", "a delight",
            "brilliant acting and a lovely story", "warm , witty and wonderful"]
NEGATIVE = ["a dull , lifeless film", "not worth the ticket", "boring and far too long",
            "a mess", "the worst script of the year", "tedious , flat and forgettable"]


def sst2_zip(per_class=SST2) -> bytes:
    """GLUE's SST-2.zip: SST-2/{train,dev,test}.tsv, tab-separated with a header (the format of
    tests/test_text.py's sst2_zip, larger)."""
    members = {}
    for split, k in per_class.items():
        rows = ["sentence\tlabel"]
        for i in range(k):
            rows.append(f"{NEGATIVE[i % len(NEGATIVE)]} ( take {i} ) \t0")
            rows.append(f"{POSITIVE[i % len(POSITIVE)]} ( take {i} ) \t1")
        members[f"SST-2/{split}.tsv"] = ("\n".join(rows) + "\n").encode()
    members["SST-2/test.tsv"] = b"index\tsentence\n0\tno labels here\n"
    return make_zip(members)


# --- all of it ------------------------------------------------------------------------------

# Lessons 05 and 06 fine-tune ResNet-50 at 224 px on all of hymenoptera and EuroSAT: on a CPU
# each image costs about half a second per epoch, so those lessons get fewer. Lesson 01 needs
# the 25 per class above (it draws k = 25 without replacement) but only extracts features.
SMALL = {"hymenoptera": {"train": {"ants": 3, "bees": 3}, "val": {"ants": 2, "bees": 2}},
         "eurosat_per_class": 3}  # 80/20 per class: 2 train, 1 test


def build(www: str | Path, base: str, *, hymenoptera=HYMENOPTERA,
          eurosat_per_class: int = EUROSAT_PER_CLASS) -> dict:
    """Write every stand-in into ``www`` (served at ``base``); return the manifest.

    ``build(www, base, **SMALL)``: the smaller image sets, for the lessons that fine-tune."""
    www = Path(www)
    files: dict[str, dict[str, bytes]] = {
        "hymenoptera": {"hymenoptera_data.zip": hymenoptera_zip(hymenoptera)},
        "flowers102": flowers102_files(),
        "eurosat": {"EuroSAT.zip": eurosat_zip(per_class=eurosat_per_class)},
        "pneumoniamnist": {"pneumoniamnist.npz": pneumoniamnist_npz()},
        "sst2": {"SST-2.zip": sst2_zip()},
    }
    cifar, cifar_md5 = cifar10_files()
    files["cifar10"] = {"cifar-10-python.tar.gz": cifar}
    manifest = {"datasets": {}, "torchvision": {
        "cifar10": cifar_md5,
        "flowers102": {n: md5(files["flowers102"][n]) for n in ("imagelabels.mat", "setid.mat")},
    }}
    for dataset, members in files.items():
        (www / dataset).mkdir(parents=True, exist_ok=True)
        manifest["datasets"][dataset] = []
        for name, data in members.items():
            (www / dataset / name).write_bytes(data)
            manifest["datasets"][dataset].append({
                "name": name, "url": f"{base}/{dataset}/{name}", "md5": md5(data),
                "sha256": hashlib.sha256(data).hexdigest()})
    return manifest


def write_manifest(manifest: dict, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(manifest, indent=1))
    return path


def checkpoint_name(name: str) -> str:
    """torchvision's file name for a backbone's default ImageNet weights (torch.hub's)."""
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT.url.rsplit("/", 1)[-1]


def write_checkpoints(torch_home: str | Path, names=FULL_BACKBONES) -> list[Path]:
    """Randomly initialised state dicts at $TORCH_HOME/hub/checkpoints/<torchvision name>.

    Scaled like trained weights, not like a fresh network: each residual block starts as the
    identity (torchvision's zero_init_residual) and the batch-norm statistics come from one pass
    over noise, so the eval-mode features have about the size of real ImageNet features. A plain
    random ResNet-50's features are so large that the lessons' fine-tuning at lr=1e-3 diverges
    (tlkit's guard raises TrainingDiverged) — a property of the stand-in, not of the lessons."""
    import torch
    import torchvision

    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        torch.manual_seed(0)
        kwargs = {"zero_init_residual": True} if name.startswith(("resnet", "resnext", "wide_resnet")) else {}
        net = torchvision.models.get_model(name, weights=None, **kwargs)
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # cumulative average: one batch sets the statistics
        net.train()
        with torch.no_grad():
            net(torch.randn(8, 3, 128, 128))
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
        path = folder / checkpoint_name(name)
        torch.save(net.state_dict(), path)
        written.append(path)
    return written


def kernel_pythonpath(existing: str = "") -> str:
    """PYTHONPATH for a child that must see the stand-ins: this folder first (its
    sitecustomize also runs the offline guard), then tests/offline, then the rest."""
    import os

    parts = [str(HERE), str(HERE.parent / "offline")]
    parts += [p for p in existing.split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)
