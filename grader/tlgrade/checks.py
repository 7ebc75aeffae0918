"""A graded check in three parts, so that the student's code never sees what decides the grade.

- ``inputs(ctx)`` — here, on the instructor's side: the problem, drawn from the check's seed
  (seed 0 for a visible check, a secret one for a hidden check) and the student's variant.
- ``probe`` — the name of a function in ``inside/probes.py``, which runs in the student's
  kernel inside the sandbox: it calls the student's functions on those inputs and returns
  plain arrays. It holds no answer, no seed and no label.
- ``verify(inputs, outputs, ctx)`` — here again: recompute the reference and compare; raise
  ``CheckFailed`` with a message for the student, or return a one-line summary.

Example (an exercise module)::

    register(Check("ex01.sgd_step", needs=("sgd_step",), probe="sgd",
                   inputs=sgd_inputs, verify=sgd_verify))
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tlkit.teach.variant import Variant

__all__ = ["Check", "CheckFailed", "Context", "register", "get_check", "calls_in"]

Arrays = dict[str, np.ndarray]
EXERCISES = ("ex01_sgd", "ex02_freeze", "ex03_features", "ex04_finetune", "ex05_strategy",
             "ex06_text")
CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([\w.]+)["']\s*(,\s*hidden\s*=\s*True\s*)?\)""")


class CheckFailed(AssertionError):
    """A check did not pass; the message says what was expected and how to fix it."""


@dataclass(frozen=True)
class Context:
    """What a check's inputs and verification may depend on."""

    seed: int
    variant: Variant
    hidden: bool


@dataclass(frozen=True)
class Check:
    """One graded property of a student's work."""

    id: str
    needs: tuple[str, ...]  # names the student's notebook must define
    probe: str  # function in inside/probes.py
    inputs: Callable[[Context], Arrays]
    verify: Callable[[Arrays, Arrays, Context], str]
    # files to hide: real path -> what to show there (an array for .npy files, else bytes)
    masks: Callable[[], dict[str, np.ndarray | bytes]] = field(default=lambda: {})


_CHECKS: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add a check to the registry (each exercise module registers its own)."""
    _CHECKS[check.id] = check
    return check


def get_check(check_id: str) -> Check:
    """The registered check called ``check_id``."""
    for name in EXERCISES:
        importlib.import_module(f"tlgrade.{name}")
    if check_id not in _CHECKS:
        raise KeyError(f"unknown check {check_id!r}; known: {sorted(_CHECKS)}")
    return _CHECKS[check_id]


def calls_in(source: str) -> list[tuple[str, bool]]:
    """The ``check(...)`` calls in a test cell's source: (check id, hidden)."""
    return [(check_id, bool(hidden)) for check_id, hidden in CHECK_CALL.findall(source)]
