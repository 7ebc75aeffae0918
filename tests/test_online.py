"""tlkit.data.online with registry entries pointed at a local HTTP server, and the real
registry checked against the checksums its sources publish."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import io
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from tlkit.data import online
from tlkit.data.images import ArrayImages
from tlkit.data.download import ChecksumError
from tlkit.data.online import ONLINE_DATASETS, describe_online, list_online, load_online

pytestmark = pytest.mark.timeout(30)

HYMENOPTERA_COUNTS = {"train": {"ants": 3, "bees": 2}, "val": {"ants": 1, "bees": 2}}


def hymenoptera_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split, counts in HYMENOPTERA_COUNTS.items():
            for cls, n in counts.items():
                for i in range(n):
                    img = io.BytesIO()
                    Image.new("RGB", (12, 10), (30 * i, 100, 200)).save(img, format="JPEG")
                    zf.writestr(f"hymenoptera_data/{split}/{cls}/{i}.jpg", img.getvalue())
    return buf.getvalue()


def pneumonia_npz() -> bytes:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in {"train": 6, "val": 3, "test": 4}.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(www):
    """Serve the folder ``www`` on 127.0.0.1 inside the block; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(QuietHandler, directory=str(www)))
    httpd.daemon_threads = True
    # A short poll interval keeps shutdown() (hence teardown) fast.
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Serve tmp_path/www on 127.0.0.1; returns (www folder, base URL)."""
    monkeypatch.delenv("TLKIT_OFFLINE", raising=False)
    www = tmp_path / "www"
    www.mkdir()
    with serving(www) as base:
        yield www, base


def point_at(monkeypatch, name: str, base: str, **checksums) -> None:
    """Register a copy of the real entry whose single file comes from ``base``."""
    entry = ONLINE_DATASETS[name]
    (f,) = entry.files
    local = dataclasses.replace(f, url=f"{base}/{f.name}", **checksums)
    monkeypatch.setitem(ONLINE_DATASETS, name, dataclasses.replace(entry, files=(local,)))


def test_hymenoptera_from_a_local_server(served, tmp_path, monkeypatch):
    www, base = served
    (www / "hymenoptera_data.zip").write_bytes(hymenoptera_zip())
    point_at(monkeypatch, "hymenoptera", base)
    root = tmp_path / "data"
    for split, counts in HYMENOPTERA_COUNTS.items():
        ds = load_online("hymenoptera", split=split, root=root, transform=np.asarray)
        assert ds.classes == ["ants", "bees"]
        assert ds.class_counts() == counts
        image, label = ds[0]
        assert image.shape == (10, 12, 3) and label == 0
    # No published checksum: the first download's sha256 was recorded next to the file.
    assert (root / "hymenoptera" / "hymenoptera_data.zip.sha256").exists()
    # Everything is local now: loading works offline.
    monkeypatch.setenv("TLKIT_OFFLINE", "1")
    assert len(load_online("hymenoptera", split="val", root=root)) == 3


def test_pneumoniamnist_from_a_local_server(served, tmp_path, monkeypatch):
    www, base = served
    data = pneumonia_npz()
    (www / "pneumoniamnist.npz").write_bytes(data)
    point_at(monkeypatch, "pneumoniamnist", base, md5=hashlib.md5(data).hexdigest())
    for split, n in {"train": 6, "val": 3, "test": 4}.items():
        ds = load_online("pneumoniamnist", split=split, root=tmp_path)
        assert isinstance(ds, ArrayImages) and len(ds) == n
        assert ds.classes == ["normal", "pneumonia"]
        assert ds.targets == [i % 2 for i in range(n)]
        image, label = ds[1]
        assert image.mode == "RGB" and image.size == (28, 28) and label == 1
    # download=False with the file present: used as is, and still checked.
    assert len(load_online("pneumoniamnist", split="val", root=tmp_path, download=False)) == 3
    cached = tmp_path / "pneumoniamnist" / "pneumoniamnist.npz"
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumError, match="download=True"):
        load_online("pneumoniamnist", split="val", root=tmp_path, download=False)


def test_the_published_md5_is_enforced(served, tmp_path, monkeypatch):
    www, base = served
    (www / "pneumoniamnist.npz").write_bytes(pneumonia_npz())
    point_at(monkeypatch, "pneumoniamnist", base)  # keeps the real MedMNIST md5
    with pytest.raises(ChecksumError, match="28209eda62fecd6e6a2d98b1501bb15f"):
        load_online("pneumoniamnist", root=tmp_path)
    assert list((tmp_path / "pneumoniamnist").iterdir()) == []


def test_eurosat_split_is_stratified_and_seeded(served, tmp_path, monkeypatch):
    www, base = served
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the real zip's layout: 2750/<Class>/<file>.jpg
        for cls, n in {"Forest": 10, "River": 5}.items():
            for i in range(n):
                img = io.BytesIO()
                Image.new("RGB", (4, 4), (i, 0, 0)).save(img, format="JPEG")
                zf.writestr(f"2750/{cls}/{cls}_{i}.jpg", img.getvalue())
    (www / "EuroSAT.zip").write_bytes(buf.getvalue())
    point_at(monkeypatch, "eurosat", base, md5=hashlib.md5(buf.getvalue()).hexdigest())
    train = load_online("eurosat", split="train", root=tmp_path)
    test = load_online("eurosat", split="test", root=tmp_path)
    assert train.classes == test.classes == ["Forest", "River"]
    assert train.class_counts() == {"Forest": 8, "River": 4}
    assert test.class_counts() == {"Forest": 2, "River": 1}
    assert not set(train.paths) & set(test.paths)
    assert load_online("eurosat", split="test", root=tmp_path).paths == test.paths
    other = [load_online("eurosat", split="test", root=tmp_path, seed=s).paths for s in (1, 2, 3)]
    assert any(p != test.paths for p in other)


def test_helpful_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_OFFLINE", "1")  # none of these may reach the network
    with pytest.raises(ValueError) as e:
        load_online("imagenet", root=tmp_path)
    for name in list_online():
        assert name in str(e.value)
    with pytest.raises(ValueError) as e:
        load_online("hymenoptera", split="test", root=tmp_path)
    assert "'test'" in str(e.value) and "train, val" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        load_online("cifar10", root=tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "cifar10" / "cifar-10-python.tar.gz") in msg
    assert "download=True" in msg and ONLINE_DATASETS["cifar10"].files[0].url in msg


def test_root_defaults_to_tlkit_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path / "cache"))
    assert online.default_root() == tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cache" / "eurosat")):
        load_online("eurosat", split="test", download=False)


def test_list_and_describe():
    assert list_online() == ["cifar10", "eurosat", "flowers102", "hymenoptera", "pneumoniamnist",
                             "sst2"]
    for name in list_online():
        text = describe_online(name)
        assert text.startswith(f"{name}: ")
        assert all(f.url in text for f in ONLINE_DATASETS[name].files)
        assert ", ".join(ONLINE_DATASETS[name].splits) in text
    with pytest.raises(ValueError, match="available"):
        describe_online("nope")


def test_registry_matches_torchvision_sources():
    from torchvision.datasets import CIFAR10, EuroSAT, Flowers102

    (cifar,) = ONLINE_DATASETS["cifar10"].files
    assert (cifar.url, cifar.name, cifar.md5) == (CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5)

    flowers = {f.name: f for f in ONLINE_DATASETS["flowers102"].files}
    for name, md5 in Flowers102._file_dict.values():
        assert flowers[name].md5 == md5
        assert flowers[name].url == Flowers102._download_url_prefix + name

    # EuroSAT keeps its URL and md5 inside download(), not in class attributes.
    (eurosat,) = ONLINE_DATASETS["eurosat"].files
    source = inspect.getsource(EuroSAT.download)
    assert f'"{eurosat.url}"' in source and f'md5="{eurosat.md5}"' in source

    (hym,) = ONLINE_DATASETS["hymenoptera"].files
    assert hym.url == "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
    assert hym.md5 is None and hym.sha256 is None  # none is published: recorded on first use
