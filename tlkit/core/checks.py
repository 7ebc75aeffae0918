"""Argument checks shared by the public API: a wrong input fails at once, with a message that
names the argument, what it got, and what to pass instead.

Why a module of its own: without these, ``k_per_class="5"`` fails three calls deep in NumPy and
``lr=float("nan")`` quietly writes NaN weights. Each check returns the cleaned value, so a
function reads ``k = integer("k_per_class", k_per_class, min=1)``.
"""
from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

__all__ = ["integer", "number", "flag", "choice", "writable_folder", "describe", "first_line"]


def describe(value: Any) -> str:
    """``'5' (str)``: the value and its type, for error messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def first_line(err: BaseException | str, limit: int = 200) -> str:
    """The first line of an error's message, shortened: to quote a library inside ours."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else ("" if isinstance(err, str) else type(err).__name__)


def integer(name: str, value: Any, *, min: int | None = None, max: int | None = None,
            hint: str = "") -> int:
    """``value`` as an int; TypeError for anything that is not a whole number (bools too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number (int), got {describe(value)}"
                        + (f"; e.g. {name}={int(value)}" if _whole(value) else "")
                        + (f". {hint}" if hint else ""))
    value = int(value)
    _check_range(name, value, min, max, hint)
    return value


def number(name: str, value: Any, *, min: float | None = None, max: float | None = None,
           above: float | None = None, hint: str = "") -> float:
    """``value`` as a finite float; ``above`` is an exclusive lower bound (``lr`` > 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {describe(value)}"
                        + (f". {hint}" if hint else ""))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}" + (f". {hint}" if hint else ""))
    if above is not None and not value > above:
        bound = "a positive number" if above == 0 else f"> {above:g}"
        raise ValueError(f"{name} must be {bound}, got {value:g}" + (f". {hint}" if hint else ""))
    _check_range(name, value, min, max, hint)
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool; a string such as ``"False"`` is refused (it would count as True)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # NumPy's bool too
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {describe(value)}"
                    + (f"; write {name}={value.strip().capitalize()} without quotes"
                       if isinstance(value, str) and value.strip().lower() in ("true", "false")
                       else ""))


def choice(name: str, value: Any, options: Iterable[Any], *, hint: str = "") -> Any:
    """``value`` if it is one of ``options``, else ValueError listing them."""
    options = list(options)
    if value not in options:
        shown = [repr(o) for o in options]
        listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
        raise ValueError(f"{name} must be {listed}; got {describe(value)}"
                         + (f". {hint}" if hint else ""))
    return value


def writable_folder(path: str | os.PathLike, *, what: str, fix: str) -> Path:
    """Create ``path`` if needed and prove that a file can be written there, before any work.

    Raises NotADirectoryError (the path or a parent is a file) or PermissionError (no write
    access, a read-only disk), each naming the folder and ``fix``. Writing a probe file is the
    only honest test: ``os.access`` says yes to root even on a read-only mount.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a folder path (str or pathlib.Path), got {describe(path)}")
    folder = Path(path).expanduser()
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is a file" if blocker == folder else f"cannot be created: {blocker} is a file"
        raise NotADirectoryError(f"{what} {folder} {where}, not a folder. {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tlkit-write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"{what} {folder} is not writable ({err.strerror or err}). "
                              f"{fix}") from None
    return folder


def _whole(value: Any) -> bool:
    try:
        return float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        return False


def _check_range(name: str, value: float, lo: float | None, hi: float | None, hint: str) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        def show(x):  # whole numbers in full (4294967295, not 4.29497e+09)
            return str(x) if isinstance(x, int) else f"{x:g}"

        bounds = (f">= {show(lo)}" if hi is None else f"<= {show(hi)}" if lo is None
                  else f"between {show(lo)} and {show(hi)}")
        raise ValueError(f"{name} must be {bounds}, got {show(value)}"
                         + (f". {hint}" if hint else ""))
