"""Point tlkit's download registry (and torchvision's per-file md5 tables) at local stand-ins.

A stand-in manifest (JSON, written by ``tests/standins/__init__.py``) says, per data set, where
each registry file is served on 127.0.0.1 and its checksums, plus the md5s of the files inside
the archives that torchvision verifies itself (CIFAR-10's batches, Flowers-102's .mat files).

:func:`apply` swaps those values in. :func:`install_lazy` does it in a process that has not
imported tlkit yet — a Jupyter kernel — by hooking the import of the modules concerned, so a
kernel that never imports tlkit pays nothing. Importing this module imports nothing heavy.

Only data changes: the registry entries are ``dataclasses.replace``-d copies of the real ones
(same parsers, same file names), and downloads still go through tlkit.data.download.
"""
from __future__ import annotations

import dataclasses
import importlib.abc
import json
import os
import sys

MANIFEST_ENV = "TLKIT_STANDINS"  # path of the manifest JSON, read by sitecustomize.py


def load_manifest(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _setitem(mapping, key, value):
    mapping[key] = value


# --- what each hooked module gets ----------------------------------------------------------

def patch_registry(online, manifest: dict, setitem=_setitem) -> None:
    """Replace the URL and checksums of every registry file that has a stand-in."""
    for name, files in manifest["datasets"].items():
        entry = online.ONLINE_DATASETS[name]
        by_name = {f["name"]: f for f in files}
        missing = {f.name for f in entry.files} - set(by_name)
        if missing:
            raise KeyError(f"the stand-in manifest lacks {sorted(missing)} of {name}")
        new = []
        for real in entry.files:
            local = by_name[real.name]
            # Same kind of check as the real entry: a published md5 becomes the stand-in's md5;
            # no published checksum (hymenoptera) stays none, so the sidecar path runs as usual.
            new.append(dataclasses.replace(
                real, url=local["url"],
                md5=local["md5"] if real.md5 else None,
                sha256=local["sha256"] if real.sha256 else None))
        setitem(online.ONLINE_DATASETS, name, dataclasses.replace(entry, files=tuple(new)))


def patch_cifar(cifar_module, manifest: dict, setattr=setattr) -> None:
    """CIFAR10 checks each extracted batch file against published md5s (class attributes)."""
    md5 = manifest["torchvision"]["cifar10"]
    cls = cifar_module.CIFAR10
    setattr(cls, "train_list", [[f, md5[f]] for f, _ in cls.train_list])
    setattr(cls, "test_list", [[f, md5[f]] for f, _ in cls.test_list])
    setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})


def patch_flowers(flowers_module, manifest: dict, setattr=setattr) -> None:
    """Flowers102 checks imagelabels.mat and setid.mat against published md5s."""
    md5 = manifest["torchvision"]["flowers102"]
    cls = flowers_module.Flowers102
    setattr(cls, "_file_dict", {key: (name, md5.get(name, real))
                                for key, (name, real) in cls._file_dict.items()})


def apply(manifest: dict, *, setitem=_setitem, setattr=setattr) -> None:
    """Patch this process now (tests pass monkeypatch.setitem / monkeypatch.setattr)."""
    import torchvision.datasets.cifar
    import torchvision.datasets.flowers102

    import tlkit.data.online

    patch_registry(tlkit.data.online, manifest, setitem)
    patch_cifar(torchvision.datasets.cifar, manifest, setattr)
    patch_flowers(torchvision.datasets.flowers102, manifest, setattr)


# --- lazily, for a kernel ---------------------------------------------------------------------

class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a callback on a module right after its code ran, before anyone else sees it."""

    def __init__(self, callbacks: dict) -> None:
        self.callbacks = callbacks

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        callback = self.callbacks.pop(fullname)
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module):
            real_exec(module)
            callback(module)

        loader.exec_module = exec_module  # this spec's own loader instance
        return spec


def install_lazy(manifest_path: str | os.PathLike) -> None:
    manifest = load_manifest(manifest_path)
    callbacks = {
        "tlkit.data.online": lambda m: patch_registry(m, manifest),
        "torchvision.datasets.cifar": lambda m: patch_cifar(m, manifest),
        "torchvision.datasets.flowers102": lambda m: patch_flowers(m, manifest),
    }
    for name in list(callbacks):  # already imported (not at start-up, but be safe)
        if name in sys.modules:
            callbacks.pop(name)(sys.modules[name])
    if callbacks:
        sys.meta_path.insert(0, _AfterImport(callbacks))
