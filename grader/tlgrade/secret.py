"""The course secret: where hidden inputs and per-student variants come from.

The secret is a file only the instructor can read (``c.CourseSecret.path`` in
``nbgrader_config.py``; create one with ``python -m tlgrade secret PATH``). From it:

- the *course code* put into each release (``COURSE = "…"``), from which a student's notebook
  derives its variant — an HMAC, so the code does not reveal the secret;
- each hidden check's seed, per student and assignment, so hidden inputs cannot be guessed
  and are the same each time that student is graded.

Without a secret, releases carry ``COURSE = None`` (the public variant for everybody) and hidden
seeds are drawn at grading time (``TLKIT_GRADING_SEED`` reproduces one).

Example::

    secret = load_secret("~/.tlgrade/secret")
    course_code(secret, "transfer-learning")
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["load_secret", "make_secret", "course_code", "hidden_seed", "draw_seed"]


def load_secret(path: str | os.PathLike | None) -> bytes | None:
    """The secret stored at ``path``; None when no path is configured."""
    if not path:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"the course secret {path} does not exist: create it with "
                                f"`python -m tlgrade secret {path}`, or unset CourseSecret.path")
    value = path.read_bytes().strip()
    if len(value) < 16:
        raise ValueError(f"the course secret in {path} is too short (at least 16 bytes)")
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"the course secret {path} is readable by others: chmod 600 {path}")
    return value


def make_secret(path: str | os.PathLike) -> Path:
    """Write a new random secret to ``path``, readable by its owner only; refuse to overwrite."""
    path = Path(path).expanduser()
    if path.exists():
        raise FileExistsError(f"{path} exists: a new secret would change every student's variant")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path


def _mac(secret: bytes, message: str) -> bytes:
    return hmac.new(secret, message.encode(), hashlib.sha256).digest()


def course_code(secret: bytes, course_id: str) -> str:
    """The public code a release carries; students' variants are derived from it."""
    return _mac(secret, f"variants:{course_id}").hex()[:16]


def draw_seed() -> int:
    """Without a secret: one seed per graded notebook, drawn now (``TLKIT_GRADING_SEED`` fixes it)."""
    if os.environ.get("TLKIT_GRADING_SEED"):
        return int(os.environ["TLKIT_GRADING_SEED"])
    return 1 + secrets.randbelow(2**31 - 1)


def hidden_seed(secret: bytes | None, *, assignment: str, student: str, check_id: str,
                drawn: int) -> int:
    """The seed of one hidden check for one student: from the secret, else ``drawn``."""
    if secret is None:
        return drawn
    digest = _mac(secret, f"hidden:{assignment}:{student}:{check_id}")
    return 1 + int.from_bytes(digest[:4], "big") % (2**31 - 1)  # never 0: that is the public seed
