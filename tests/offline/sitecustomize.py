"""Hold every Python process the tests start to loopback: kernels, servers, graders.

The test session puts this folder first on PYTHONPATH and sets TLKIT_TESTS_OFFLINE=1 (see
conftest.py), so Python runs this file at start-up in every child it launches — nbval's and
nbgrader's kernels, JupyterLab and its kernels, trusted-grading subprocesses — not only in the
pytest process. Any connection or name lookup beyond 127.0.0.1 / ::1 fails at once.

Outside the tests (the variable unset) it does nothing.
"""
from __future__ import annotations

import os

ENABLED = "TLKIT_TESTS_OFFLINE"


def _address(host):
    import ipaddress

    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except (ValueError, TypeError):
        return None


def _is_local(host) -> bool:
    if host in (None, "", "localhost", b"localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def install() -> None:
    """Patch this process's socket module: loopback only."""
    import socket

    if getattr(socket, "_tlkit_offline", False):
        return
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(address):
        host = address[0] if isinstance(address, tuple) else None
        return not _is_local(host)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and refuse(address):
            raise ConnectionRefusedError(f"tests may not use the network (tried {address})")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and refuse(address):
            raise ConnectionRefusedError(f"tests may not use the network (tried {address})")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        # A name needs a DNS server: refused. An address literal needs no lookup; connecting
        # to it is what connect() above refuses.
        if not _is_local(host) and _address(host) is None:
            raise socket.gaierror(f"tests may not resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    socket._tlkit_offline = True


if os.environ.get(ENABLED) == "1":
    install()
