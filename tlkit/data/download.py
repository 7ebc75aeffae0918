"""Getting one file from a URL safely: resumable, verified, atomic.

Course data sets are hundreds of megabytes fetched over café and campus Wi-Fi, so a transfer
that breaks must resume where it stopped, a corrupted file must never be mistaken for a good
one, and an interrupted download or extraction must never look finished.

    >>> from tlkit.data.download import download
    >>> zip_path = download("https://download.pytorch.org/tutorial/hymenoptera_data.zip",
    ...                     "data/hymenoptera_data.zip")          # doctest: +SKIP

Unpacking is :func:`tlkit.data.archives.extract`.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..core.checks import describe, flag, integer, number, writable_folder

__all__ = ["download", "file_digest", "wrong_content", "DownloadError", "ChecksumError"]


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says how to get it by hand."""


class ChecksumError(DownloadError):
    """A file's content is not what was expected (nothing corrupt is kept)."""


def file_digest(path: str | Path, algorithm: str = "sha256", *, chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks so big archives need little memory.

    >>> file_digest("data/hymenoptera_data.zip")                   # doctest: +SKIP
    '...'
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def _manual(url: str, path: Path) -> str:
    return f"To get the file by hand, download {url} and place it at {path}."


def _expected(sha256: str | None, md5: str | None) -> tuple[str, str] | None:
    # sha256 wins when both are given: it is the stronger of the two.
    for algorithm, value, length in (("sha256", sha256, 64), ("md5", md5, 32)):
        if not value:
            continue
        if not isinstance(value, str):
            raise TypeError(f"{algorithm} must be the hex digest as a string, got {describe(value)}")
        # As publishers write it: "sha256:ab12…", upper case, a trailing newline.
        digest = value.strip().lower().removeprefix(f"{algorithm}:").strip()
        if len(digest) != length or not re.fullmatch(r"[0-9a-f]+", digest):
            other = {64: "sha256", 32: "md5"}.get(len(digest))
            raise ValueError(f"{algorithm}={value!r} is not a {algorithm} digest ({length} hex "
                             f"characters)" + (f"; it looks like a {other}: pass {other}=" if
                                               other and other != algorithm else ""))
        return algorithm, digest
    return None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_sidecar(path: Path, digest: str) -> None:
    # Same format as `sha256sum`, so a learner can check the file with standard tools.
    tmp = _sidecar(path).with_name(_sidecar(path).name + ".tmp")
    tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(tmp, _sidecar(path))


# The first bytes of the formats the course downloads. A file whose name promises one of them
# but starts otherwise is not the file (an error page, a captive portal, a truncated copy).
_MAGIC = {".zip": (b"PK\x03\x04", b"PK\x05\x06"), ".npz": (b"PK\x03\x04",),
          ".gz": (b"\x1f\x8b",), ".tgz": (b"\x1f\x8b",),
          ".pth": (b"PK\x03\x04", b"\x80"), ".pt": (b"PK\x03\x04", b"\x80"),
          ".mat": (b"MATLAB",)}


def wrong_content(path: str | Path, content_type: str | None = None, *,
                  name: str | None = None) -> str | None:
    """Why ``path`` is not the file its name (or ``name``) promises — a web page, another
    format — or None.

    >>> wrong_content("data/hymenoptera_data.zip")                 # doctest: +SKIP
    'it is a web page (HTML), not the file: ...'
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    named = Path(name or path.name)
    text = head.lstrip().lower()
    html_type = (content_type or "").split(";")[0].strip().lower() in ("text/html",
                                                                     "application/xhtml+xml")
    if named.suffix.lower() not in (".html", ".htm") and (
            html_type or text.startswith((b"<!doctype html", b"<html", b"<head"))
            or b"<html" in text[:512]):
        return ("it is a web page (HTML), not the file: a Wi-Fi sign-in page, a login wall or a "
                "server error page answered instead. Open the address in a browser (sign in if "
                "asked), then call again")
    if not head:
        return "it is empty"
    magic = _MAGIC.get(named.suffix.lower())
    if named.name.lower().endswith(".tar"):
        if len(head) < 262 or head[257:262] != b"ustar":
            return "it is not a tar archive"
    elif magic and not head.startswith(magic):
        return f"it does not start like a {named.suffix} file (got {head[:8]!r})"
    return None


def _cached_ok(path: Path, expected: tuple[str, str] | None) -> bool:
    """True if ``path`` can be used as is; raises when an unpublished digest changed."""
    if expected is not None:
        return file_digest(path, expected[0]) == expected[1]
    if wrong_content(path) is not None:
        # Not the file (an old bug or a hand-copied error page): fetch it again, trust nothing.
        _sidecar(path).unlink(missing_ok=True)
        return False
    sidecar = _sidecar(path)
    actual = file_digest(path)
    if not sidecar.exists():
        # A file placed by hand with no published checksum: trust it and remember it.
        _write_sidecar(path, actual)
        return True
    recorded = sidecar.read_text().split()[0].lower()
    if actual != recorded:
        raise ChecksumError(
            f"{path} changed since it was downloaded: sha256 {actual}, recorded {recorded} in "
            f"{sidecar}. The cached file is corrupted; delete it (and {sidecar.name}) and "
            f"download it again.")
    return True


def download(url: str, path: str | Path, *, sha256: str | None = None, md5: str | None = None,
             timeout: float = 30.0, progress: bool = True, chunk_size: int = 1 << 20) -> Path:
    """Fetch ``url`` to ``path`` (resuming a partial download) and verify it.

    Without a published checksum the sha256 of the first download is recorded next to the
    file (``<name>.sha256``) and later calls check the cached file against it. Set
    ``TLKIT_OFFLINE=1`` to forbid network access.

    >>> download("https://download.pytorch.org/tutorial/hymenoptera_data.zip",
    ...          "data/hymenoptera_data.zip")                      # doctest: +SKIP
    PosixPath('data/hymenoptera_data.zip')
    """
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https",
                                                                             "file"):
        raise ValueError(f"url must be an http:// or https:// address, got {url!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or pathlib.Path), got {describe(path)}")
    timeout = number("timeout", timeout, above=0)
    progress = flag("progress", progress)
    chunk_size = integer("chunk_size", chunk_size, min=1)
    expected = _expected(sha256, md5)  # a malformed checksum fails before any byte is fetched
    if str(path).endswith(("/", os.sep)):  # "data/": a folder, as in cp and curl -O
        path = Path(path) / (os.path.basename(urllib.parse.urlsplit(url).path) or "download")
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: pass the file to save to, e.g. "
                                f"{path / os.path.basename(urllib.parse.urlsplit(url).path)}")
    if path.exists() and _cached_ok(path, expected):
        return path
    if os.environ.get("TLKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        raise DownloadError(f"TLKIT_OFFLINE is set, so {url} was not downloaded to {path}. "
                            + _manual(url, path))
    writable_folder(path.parent, what="The download folder",
                    fix="Choose another folder (for data sets: set TLKIT_DATA or pass root=).")
    part = path.with_name(path.name + ".part")
    content_type = None
    # Two rounds at most: the second only after a 416 proved the .part unusable.
    for _ in range(2):
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "tlkit"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                              timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:
                # Nothing left past our offset: the .part is complete, or longer than the file.
                total = re.search(r"/(\d+)", e.headers.get("Content-Range", "") or "")
                e.close()
                if (expected is None and total and int(total.group(1)) == have) or (
                        expected is not None and file_digest(part, expected[0]) == expected[1]):
                    break
                part.unlink()
                continue
            raise DownloadError(f"Downloading {url} to {path} failed: HTTP {e.code} {e.reason}. "
                                + _manual(url, path)) from e
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"Could not download {url} to {path}: {reason}. "
                                + _manual(url, path)) from e
        with response:
            content_type = response.headers.get("Content-Type")
            _receive(response, part, have if response.status == 206 else 0,
                     url=url, progress=progress, chunk_size=chunk_size)
        break
    return _finish(part, path, expected, url, content_type)


def _receive(response, part: Path, start: int, *, url: str, progress: bool,
             chunk_size: int) -> None:
    # A 200 answer to a Range request means the server ignored it: start again from zero.
    length = response.headers.get("Content-Length")
    total = start + int(length) if length is not None else None
    from tqdm.auto import tqdm

    done = start
    with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[:-5], disable=not progress, leave=False) as bar:
        try:
            while chunk := response.read(chunk_size):
                f.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as e:
            f.flush()
            raise _interrupted(url, part, done, total, e) from e
    # http.client returns b"" (no exception) when the server closes early: count the bytes.
    if total is not None and done < total:
        raise _interrupted(url, part, done, total, "connection closed early")


def _interrupted(url: str, part: Path, done: int, total: int | None, why) -> DownloadError:
    of = f"{done} of {total}" if total is not None else f"{done} of an unknown number of"
    return DownloadError(f"The download of {url} was interrupted at {of} bytes ({why}). The "
                         f"partial file is kept at {part}; call again to resume.")


def _finish(part: Path, path: Path, expected: tuple[str, str] | None, url: str,
            content_type: str | None) -> Path:
    if expected is not None:
        algorithm, want = expected
        actual = file_digest(part, algorithm)
        if actual != want:
            why = wrong_content(part, content_type, name=path.name)
            # A resumed .part may hold stale bytes: remove it so the retry starts clean.
            part.unlink()
            raise ChecksumError(
                f"The download of {url} for {path} is corrupt: {algorithm} {actual}, expected "
                f"{want}" + (f"; {why}" if why else "") + ". It was deleted; call again to retry. "
                "If it persists, the file at the source changed - please report it to the "
                "course staff.")
    else:
        # No published checksum: this download's digest becomes the trusted one, so it must
        # at least be the right kind of file — never record an error page as the archive.
        why = wrong_content(part, content_type, name=path.name)
        if why is not None:
            part.unlink()
            raise DownloadError(f"The download of {url} for {path} was refused: {why}. "
                                "Nothing was kept. " + _manual(url, path))
        _write_sidecar(path, file_digest(part))
    os.replace(part, path)  # atomic: `path` is either absent or complete
    return path
