"""Checks for the graded exercises, written so that student code cannot fake a pass.

In a notebook, a test cell calls ``check("ex01.sgd_step")``: the check runs the student's
function on inputs drawn from a seed and compares the result with a reference, with a friendly
message when they differ. That is the immediate feedback (Colab, JupyterLab, ``nbgrader validate``).

Grading does not trust the notebook's kernel: student code runs there first and could replace
``torch.allclose``, silence tracebacks or exit. So each check is split in two halves:

- ``probe(namespace, seed)`` runs the student's code and returns plain NumPy arrays. During
  grading it runs in a fresh subprocess (``tlkit.grading.trusted``) that executes the
  notebook's cells first.
- ``verify(arrays, seed)`` recomputes the reference from the seed and compares. During grading
  it runs in the grader's own process, which no student code has touched, with a seed drawn at
  grading time: reading the public solutions does not reveal the inputs.

Example (a test cell)::

    from tlkit.grading import check
    check("ex01.sgd_step")
"""
from __future__ import annotations

import inspect
import os
import secrets
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["check", "Check", "CheckFailed", "register", "get_check", "run_check"]

Arrays = dict[str, np.ndarray]


class CheckFailed(AssertionError):
    """A check did not pass; the message says what was expected and how to fix it."""


@dataclass(frozen=True)
class Check:
    """One graded property of a student's work."""

    id: str
    needs: tuple[str, ...]  # names the student's cells must define
    probe: Callable[[dict, int], Arrays]  # untrusted side: run student code
    verify: Callable[[Arrays, int], str]  # trusted side: raise CheckFailed, or return a summary


_CHECKS: dict[str, Check] = {}


def register(check_: Check) -> Check:
    """Add a check to the registry (each exercise module registers its own)."""
    _CHECKS[check_.id] = check_
    return check_


def get_check(check_id: str) -> Check:
    """The registered check called ``check_id``."""
    _load_exercises()
    if check_id not in _CHECKS:
        raise KeyError(f"unknown check {check_id!r}; known: {sorted(_CHECKS)}")
    return _CHECKS[check_id]


def run_check(check_id: str, namespace: dict, *, seed: int) -> str:
    """Probe and verify in this process (the feedback path); raises CheckFailed."""
    spec = get_check(check_id)
    missing = [name for name in spec.needs if name not in namespace]
    if missing:
        raise CheckFailed(f"`{missing[0]}` is not defined yet: run the cell where you write it "
                          "(and the cells above it) first.")
    try:
        arrays = spec.probe(namespace, seed)
    except CheckFailed:
        raise
    except Exception as error:  # the student's code raised: say which and why
        raise CheckFailed(explain(error)) from error
    return spec.verify(arrays, seed)


def check(check_id: str, *, hidden: bool = False, seed: int | None = None) -> None:
    """Check the work defined in the calling notebook; prints what passed.

    Visible checks use seed 0, so the same inputs every time; ``hidden=True`` draws fresh ones
    and prints the seed. During nbgrader's autograde the kernel's verdict does not count: the
    grader re-runs every check in a process of its own, so here it only says so.
    """
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        print(f"{check_id}: checked by the grader in a separate process")
        return
    if seed is None:
        seed = secrets.randbelow(2**31) if hidden else 0
    namespace = inspect.currentframe().f_back.f_globals
    summary = run_check(check_id, namespace, seed=seed)
    print(f"✔ {check_id} (seed {seed}): {summary}")


def explain(error: BaseException) -> str:
    """A student-facing message for an exception raised by their code."""
    text = f"{type(error).__name__}: {error}"
    if "leaf Variable that requires grad" in text:
        return (f"{text}\nUpdate parameters inside `with torch.no_grad():` — autograd must not "
                "record the update step itself.")
    if isinstance(error, NotImplementedError):
        return "not written yet: replace `raise NotImplementedError()` with your code."
    return f"your code raised {text}"


def _load_exercises() -> None:
    # Importing the exercise modules registers their checks.
    from . import ex01_sgd, ex02_freeze, ex03_features, ex04_finetune, ex05_strategy  # noqa: F401
