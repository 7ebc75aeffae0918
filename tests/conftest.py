"""Test-wide guards: no network beyond 127.0.0.1, and caches in a temporary folder."""
from __future__ import annotations

import ipaddress
import socket

import pytest


def _is_local(host) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Any connection to a non-loopback address fails at once: tests never use the network."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(host):
            raise ConnectionRefusedError(f"tests may not use the network (tried {address})")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            raise socket.gaierror(f"tests may not resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def _isolated_caches(monkeypatch, tmp_path_factory):
    """Feature, data and torch.hub caches live in a per-session temporary folder."""
    root = tmp_path_factory.getbasetemp() / "caches"
    monkeypatch.setenv("TLKIT_CACHE", str(root / "tlkit"))
    monkeypatch.setenv("TLKIT_DATA", str(root / "data"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def grace_hopper():
    """matplotlib's sample photograph of Grace Hopper in uniform, as a PIL RGB image."""
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")
