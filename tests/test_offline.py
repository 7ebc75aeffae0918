"""Are the tests held offline — this process, the Python processes they start, and the
Jupyter kernels that nbval, nbgrader and JupyterLab run? Loopback must still work."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading

import pytest

# An address from TEST-NET-1 (RFC 5737): never a real host, so nothing leaves even if the
# guard failed; the guard must refuse it before any packet is sent.
OUTSIDE = ("192.0.2.1", 80)
TRY_OUTSIDE = textwrap.dedent(f"""
    import socket
    for attempt in (lambda: socket.create_connection({OUTSIDE!r}, timeout=3),
                    lambda: socket.getaddrinfo("pypi.org", 443)):
        try:
            attempt()
            print("REACHED")
        except OSError as err:
            print("REFUSED", err)
""")


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that answers one line."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello from loopback\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()


def test_this_process_is_held_to_loopback():
    with pytest.raises(ConnectionRefusedError, match="tests may not use the network"):
        socket.create_connection(OUTSIDE, timeout=3)
    with pytest.raises(socket.gaierror, match="may not resolve"):
        socket.getaddrinfo("pypi.org", 443)


def test_a_python_child_process_is_held_too():
    out = subprocess.run([sys.executable, "-c", TRY_OUTSIDE], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    # The guard's own words, twice: not merely a network that happens to be down.
    assert out.count("REFUSED tests may not") == 2 and "REACHED" not in out, out


def test_a_jupyter_kernel_is_held_too_and_still_reaches_loopback(listener):
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        outputs = []
        code = TRY_OUTSIDE + textwrap.dedent(f"""
            with socket.create_connection(("127.0.0.1", {listener}), timeout=10) as s:
                print(s.recv(100).decode().strip())
        """)
        client.execute_interactive(code, timeout=60, output_hook=lambda msg: outputs.append(
            msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        text = "".join(outputs)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert text.count("REFUSED tests may not") == 2 and "REACHED" not in text, text
    assert "hello from loopback" in text, text
