"""Unpacking a downloaded archive safely: atomic, and nothing lands outside its folder.

A zip or tar from the internet may hold members named ``../../.bashrc`` or links that point
out of the folder; an extraction cut short by a full disk or a closed laptop must not look
finished. Both are handled here.

    >>> from tlkit.data.archives import extract
    >>> extract("data/hymenoptera_data.zip", "data/hymenoptera")  # doctest: +SKIP
    PosixPath('data/hymenoptera')
"""
from __future__ import annotations

import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ..core.checks import writable_folder

__all__ = ["extract"]

_MARKER = ".tlkit-extracted"


def _check_member(name: str, into: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"Refusing to extract {name!r}: it would land outside {into}. The "
                         f"archive is corrupt or malicious; delete it and download it again.")


def extract(archive: str | Path, into: str | Path) -> Path:
    """Unpack a .zip / .tar / .tar.gz / .tgz into ``into`` (skipped if already done).

    Members that would escape ``into`` are refused. Unpacking happens in a sibling temporary
    folder renamed at the end, so a half-finished extraction is never mistaken for a finished one.

    >>> extract("data/hymenoptera_data.zip", "data/hymenoptera")  # doctest: +SKIP
    PosixPath('data/hymenoptera')
    """
    archive, into = Path(archive).expanduser(), Path(into).expanduser()
    if (into / _MARKER).exists():
        return into
    if into.exists():
        if into.is_dir() and not any(into.iterdir()):
            into.rmdir()
        else:
            raise FileExistsError(f"{into} exists but was not made by tlkit.data.archives.extract; "
                                  f"delete it or extract {archive} somewhere else.")
    writable_folder(into.parent, what="The folder to extract into",
                    fix="Choose another folder (for data sets: set TLKIT_DATA or pass root=).")
    tmp = into.with_name(into.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of an interrupted extraction
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(name, into)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for m in tf.getmembers():
                    _check_member(m.name, into)
                    if m.issym() or m.islnk():
                        _check_member(str(PurePosixPath(m.name).parent / m.linkname), into)
                    elif not (m.isfile() or m.isdir()):
                        raise ValueError(f"Refusing to extract special file {m.name!r}.")
                # The "data" filter (Python >= 3.11.4) adds the standard library's own checks.
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(tmp, **kwargs)
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive.")
        (tmp / _MARKER).write_text(f"{archive.name}\n")
        os.rename(tmp, into)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return into
