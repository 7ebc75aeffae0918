"""tlkit.data.download against a real HTTP server on 127.0.0.1 that can corrupt, cut off and
ignore Range requests."""
from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from standins import make_zip  # tests/standins
from tlkit.data.archives import extract
from tlkit.data.download import ChecksumError, DownloadError, download, file_digest

pytestmark = pytest.mark.timeout(30)


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


# Stored, not deflated, so the archive is big enough to cut in half across several chunks.
ARCHIVE = make_zip({f"tree/{c}/{i}.png": _png((40 * i, 10 * len(c), 90)) for c in ("a", "b")
                    for i in range(3)})


class Server:
    """State the handler reads; tests flip the switches."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"data.zip": ARCHIVE}
        self.requests: list[dict[str, str]] = []
        self.corrupt = False        # serve other bytes than the file
        self.cut = False            # send half the body, then close the socket
        self.ignore_range = False   # answer 200 with the whole file even to a Range request
        self.types: dict[str, str] = {}  # Content-Type to send for a file
        self.url = ""

    def ranges(self) -> list[str | None]:
        return [h.get("Range") for h in self.requests]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        st: Server = self.server.state
        st.requests.append(dict(self.headers))
        data = st.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        if st.corrupt:
            data = bytes(b ^ 0x55 for b in data)
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if m and not st.ignore_range:
            start, status = int(m.group(1)), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if self.path.lstrip("/") in st.types:
            self.send_header("Content-Type", st.types[self.path.lstrip("/")])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if st.cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda *a: None  # the deliberate cut-offs raise in the handler
    httpd.state = Server()
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # A short poll interval keeps shutdown() (hence teardown) fast.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("TLKIT_OFFLINE", raising=False)


SHA = hashlib.sha256(ARCHIVE).hexdigest()
MD5 = hashlib.md5(ARCHIVE).hexdigest()


def part_of(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def test_good_archive_is_downloaded_and_verified(server, tmp_path):
    target = tmp_path / "sub" / "data.zip"
    got = download(f"{server.url}/data.zip", target, sha256=SHA, progress=False, timeout=5)
    assert got == target and target.read_bytes() == ARCHIVE
    assert not part_of(target).exists()
    assert file_digest(target) == SHA and file_digest(target, "md5") == MD5
    # Present and matching: no second request.
    download(f"{server.url}/data.zip", target, md5=MD5, progress=False, timeout=5)
    assert len(server.requests) == 1


def test_wrong_bytes_raise_and_leave_nothing_then_retry_succeeds(server, tmp_path):
    target = tmp_path / "data.zip"
    server.corrupt = True
    with pytest.raises(ChecksumError) as e:
        download(f"{server.url}/data.zip", target, sha256=SHA, progress=False, timeout=5)
    msg = str(e.value)
    assert str(target) in msg and SHA in msg and hashlib.sha256(
        bytes(b ^ 0x55 for b in ARCHIVE)).hexdigest() in msg
    assert "retry" in msg and "report" in msg
    assert not target.exists() and not part_of(target).exists()
    server.corrupt = False
    download(f"{server.url}/data.zip", target, sha256=SHA, progress=False, timeout=5)
    assert target.read_bytes() == ARCHIVE


def test_cut_off_transfer_keeps_part_and_resumes_with_range(server, tmp_path):
    target = tmp_path / "data.zip"
    server.cut = True
    with pytest.raises(DownloadError) as e:
        download(f"{server.url}/data.zip", target, md5=MD5, progress=False, timeout=5,
                 chunk_size=256)
    half = len(ARCHIVE) // 2
    assert f"interrupted at {half} of {len(ARCHIVE)} bytes" in str(e.value)
    assert "resume" in str(e.value)
    assert not target.exists()
    assert part_of(target).read_bytes() == ARCHIVE[:half]

    server.cut = False
    download(f"{server.url}/data.zip", target, md5=MD5, progress=False, timeout=5)
    assert server.ranges() == [None, f"bytes={half}-"]
    assert target.read_bytes() == ARCHIVE
    assert not part_of(target).exists()


def test_server_ignoring_range_still_gives_the_right_file(server, tmp_path):
    target = tmp_path / "data.zip"
    part_of(target).write_bytes(b"stale bytes from somewhere else")
    server.ignore_range = True
    download(f"{server.url}/data.zip", target, sha256=SHA, progress=False, timeout=5)
    assert server.ranges() == [f"bytes={len(b'stale bytes from somewhere else')}-"]
    assert target.read_bytes() == ARCHIVE


def test_complete_part_answered_416_is_verified_not_redownloaded(server, tmp_path):
    target = tmp_path / "data.zip"
    part_of(target).write_bytes(ARCHIVE)
    download(f"{server.url}/data.zip", target, sha256=SHA, progress=False, timeout=5)
    assert target.read_bytes() == ARCHIVE and len(server.requests) == 1
    # A .part longer than the file and wrong: 416, deleted, downloaded again from zero.
    other = tmp_path / "other.zip"
    part_of(other).write_bytes(b"x" * (len(ARCHIVE) + 10))
    server.files["other.zip"] = ARCHIVE
    download(f"{server.url}/other.zip", other, sha256=SHA, progress=False, timeout=5)
    assert other.read_bytes() == ARCHIVE and server.ranges()[-1] is None


def test_unpublished_checksum_is_recorded_and_checked(server, tmp_path):
    target = tmp_path / "data.zip"
    download(f"{server.url}/data.zip", target, progress=False, timeout=5)
    sidecar = tmp_path / "data.zip.sha256"
    assert sidecar.read_text().split()[0] == SHA
    download(f"{server.url}/data.zip", target, progress=False, timeout=5)  # cached, verified
    assert len(server.requests) == 1
    target.write_bytes(ARCHIVE[:-1] + b"!")
    with pytest.raises(ChecksumError) as e:
        download(f"{server.url}/data.zip", target, progress=False, timeout=5)
    assert str(target) in str(e.value) and "delete" in str(e.value)
    assert len(server.requests) == 1


def test_connection_refused_fails_fast_with_instructions(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.zip"
    target = tmp_path / "data.zip"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as e:
        download(url, target, progress=False, timeout=5)
    assert time.monotonic() - t0 < 5
    assert url in str(e.value) and str(target) in str(e.value)
    assert f"download {url} and place it at {target}" in str(e.value)
    assert not target.exists() and not part_of(target).exists()


def test_offline_mode_never_touches_the_network(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_OFFLINE", "1")
    url, target = f"{server.url}/data.zip", tmp_path / "data.zip"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as e:
        download(url, target, sha256=SHA, progress=False)
    assert time.monotonic() - t0 < 5
    assert url in str(e.value) and str(target) in str(e.value)
    assert server.requests == []
    target.write_bytes(ARCHIVE)  # a file placed by hand is used offline
    assert download(url, target, sha256=SHA, progress=False) == target


def test_extract_zip_safely_and_only_once(tmp_path):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(make_zip({"ok.txt": b"fine", "../escaped.txt": b"gotcha"}))
    with pytest.raises(ValueError, match="outside"):
        extract(evil, tmp_path / "out" / "evil")
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "evil").exists()
    assert not (tmp_path / "out" / "evil.extracting").exists()

    good = tmp_path / "good.zip"
    good.write_bytes(ARCHIVE)
    into = extract(good, tmp_path / "good")
    assert sorted(p.name for p in (into / "tree" / "a").iterdir()) == ["0.png", "1.png", "2.png"]
    with Image.open(into / "tree" / "b" / "2.png") as im:
        assert im.size == (8, 8)
    good.unlink()  # a second call must not even open the archive
    assert extract(good, tmp_path / "good") == into


def test_extract_tar_rejects_absolute_and_links_out(tmp_path):
    def tar(name: str, **link) -> Path:
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link["to"]
                tf.addfile(info)
            else:
                info.size = 4
                tf.addfile(info, io.BytesIO(b"data"))
        return path

    with pytest.raises(ValueError):
        extract(tar("/etc/evil"), tmp_path / "a")
    with pytest.raises(ValueError):
        extract(tar("link", to="../../outside"), tmp_path / "b")
    assert (extract(tar("dir/file.txt"), tmp_path / "c") / "dir" / "file.txt").read_text() == "data"


def test_interrupted_extraction_never_looks_finished(tmp_path):
    archive = tmp_path / "good.zip"
    archive.write_bytes(ARCHIVE)
    leftover = tmp_path / "good.extracting"  # as left by a killed earlier extraction
    (leftover / "tree").mkdir(parents=True)
    into = extract(archive, tmp_path / "good")
    assert not leftover.exists()
    assert len(list((into / "tree").rglob("*.png"))) == 6


# --- answers that are not the file: a Wi-Fi sign-in page, an error page, another format -----

SIGN_IN = (b"<!DOCTYPE html>\n<html><head><title>Campus Wi-Fi</title></head>"
           b"<body>Please sign in to continue</body></html>")


@pytest.mark.parametrize("body, content_type", [
    (SIGN_IN, "text/html; charset=utf-8"),          # says what it is
    (SIGN_IN, "application/octet-stream"),          # lies about it: the bytes give it away
    (b"  \n<html><body>502 Bad Gateway</body></html>", None),
    (b"this is not a zip archive at all", "application/zip"),
    (b"", "application/zip"),
])
def test_a_page_instead_of_the_file_is_refused_and_nothing_is_trusted(server, tmp_path, body,
                                                                       content_type):
    server.files["data.zip"] = body
    if content_type:
        server.types["data.zip"] = content_type
    target = tmp_path / "data.zip"
    with pytest.raises(DownloadError) as e:
        download(f"{server.url}/data.zip", target, progress=False, timeout=5)
    message = str(e.value)
    assert str(target) in message and "Nothing was kept" in message
    assert ("web page" in message) == body.lstrip().lower().startswith((b"<!doctype", b"<html"))
    # No archive, no partial file, and above all no recorded checksum for the wrong bytes.
    assert not target.exists() and not part_of(target).exists()
    assert not target.with_name("data.zip.sha256").exists()
    # Once the network answers with the real file, the same call succeeds.
    server.files["data.zip"], server.types = ARCHIVE, {}
    assert download(f"{server.url}/data.zip", target, progress=False, timeout=5).read_bytes() \
        == ARCHIVE


def test_an_error_page_with_a_published_checksum_says_what_it_was(server, tmp_path):
    server.files["data.zip"] = SIGN_IN
    with pytest.raises(ChecksumError, match="web page"):
        download(f"{server.url}/data.zip", tmp_path / "data.zip", sha256=SHA, progress=False,
                 timeout=5)


def test_an_html_page_cached_by_an_older_version_is_fetched_again(server, tmp_path):
    target = tmp_path / "data.zip"
    target.write_bytes(SIGN_IN)  # kept, with its checksum "trusted", before this was caught
    target.with_name("data.zip.sha256").write_text(
        f"{hashlib.sha256(SIGN_IN).hexdigest()}  data.zip\n")
    assert download(f"{server.url}/data.zip", target, progress=False, timeout=5).read_bytes() \
        == ARCHIVE
    assert target.with_name("data.zip.sha256").read_text().split()[0] == SHA


@pytest.mark.parametrize("url, path, error, words", [
    ("ftp://example.org/x.zip", "x.zip", ValueError, "http"),
    ("not a url", "x.zip", ValueError, "http"),
    (None, "x.zip", ValueError, "http"),
    ("http://127.0.0.1:9/x.zip", 42, TypeError, "path"),
])
def test_bad_addresses_and_paths_are_named(tmp_path, url, path, error, words):
    with pytest.raises(error, match=words):
        download(url, path if not isinstance(path, str) else tmp_path / path, progress=False)


def test_a_folder_as_the_target_and_a_file_in_the_way_are_named(server, tmp_path):
    with pytest.raises(IsADirectoryError, match="data.zip"):
        download(f"{server.url}/data.zip", tmp_path, progress=False, timeout=5)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(NotADirectoryError, match="blocker"):
        download(f"{server.url}/data.zip", tmp_path / "blocker" / "data.zip", progress=False,
                 timeout=5)
    assert server.requests == []  # refused before any byte was asked for


def test_a_folder_ending_in_a_slash_gets_the_file_name_from_the_address(server, tmp_path):
    got = download(f"{server.url}/data.zip", f"{tmp_path}/new_folder/", progress=False, timeout=5)
    assert got == tmp_path / "new_folder" / "data.zip" and got.read_bytes() == ARCHIVE


def test_checksums_as_publishers_write_them_are_understood(server, tmp_path):
    target = tmp_path / "data.zip"
    download(f"{server.url}/data.zip", target, sha256=f"sha256:{SHA.upper()}\n",
             progress=False, timeout=5)
    assert target.read_bytes() == ARCHIVE


@pytest.mark.parametrize("kwargs, words", [
    ({"sha256": SHA[:-1]}, "not a sha256 digest"),
    ({"md5": SHA}, "looks like a sha256: pass sha256="),
    ({"sha256": 12345}, "hex digest as a string"),
])
def test_a_malformed_checksum_fails_before_any_byte_is_fetched(server, tmp_path, kwargs, words):
    with pytest.raises((ValueError, TypeError), match=words):
        download(f"{server.url}/data.zip", tmp_path / "data.zip", progress=False, **kwargs)
    assert server.requests == []
