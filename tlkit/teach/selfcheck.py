"""Self-checks for the exercises: immediate feedback, with no answer key inside.

A test cell calls ``check("ex01.sgd_step")``: your function runs on the public problem
(``tlkit.teach.exercises``, seed 0) and the result is compared with a salted hash of the right
one (``selfcheck_answers.json``, written by the instructor's grader), as nbgrader's hashed
autotests do. Checks of a property (is every backbone parameter frozen? does the loss fall?)
need no key. A task that asks you to write X cannot be passed by calling tlkit's X.

Grades do not come from here: nbgrader's grader re-runs every check outside your notebook, on
inputs of its own (``hidden=True`` marks those), so while it grades this only says so.

Example::

    from tlkit.teach.selfcheck import check
    check("ex01.sgd_step")
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np


__all__ = ["check", "CheckFailed", "digest", "forbid", "forbidden", "FORBIDDEN"]

ANSWERS = Path(__file__).with_name("selfcheck_answers.json")
_PACKAGE = str(Path(__file__).resolve().parents[1]) + "/"  # tlkit/
_TORCH = str(Path(importlib.util.find_spec("torch").origin).parent) + "/"  # torch/
ACCURACY_BAR = 0.85  # ex03: the same bar, on the same kind of draw, as the grader's
TEXT_ACCURACY_BAR = 0.75  # ex06: likewise, on held-out words

# assignment -> tlkit functions its tasks ask you to write yourself: {module: names}
FORBIDDEN = {
    "ex01_sgd_update": {"tlkit.learn.sgd": ("sgd_step",)},
    "ex02_freeze_and_head": {"tlkit.models.surgery": ("freeze", "freeze_to", "count_parameters",
                                                      "summary")},
    "ex04_fine_tuning": {"tlkit.models.surgery": ("unfreeze_last", "freeze_to", "param_groups",
                                                  "group_learning_rates")},
    # A method (Class.name): the encoder's own pooling, which ex06's mean_pool re-implements.
    "ex06_text_transfer": {"tlkit.models.text": ("MeanPool.forward",)},
}


class CheckFailed(AssertionError):
    """Not right yet; the message says what was expected and how to fix it."""


def digest(check_id: str, value, *, salt: str) -> str:
    """The salted hash a result is compared by: numbers rounded to 4 decimals."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        text = "|".join(value)
    else:
        arrays = value if isinstance(value, (list, tuple)) else [value]
        text = "|".join(",".join(f"{x:.4f}" for x in np.round(np.asarray(a, np.float64), 4).ravel()
                                 + 0.0) for a in arrays)
    return hashlib.sha256(f"{salt}|{check_id}|{text}".encode()).hexdigest()


def forbid(assignment: str) -> Callable[[], None]:
    """Make ``FORBIDDEN[assignment]`` refuse calls from your own code; returns what undoes it."""
    saved = []
    for module_name, names in FORBIDDEN.get(assignment, {}).items():
        module = importlib.import_module(module_name)
        for dotted in names:
            owner, name = module, dotted
            if "." in dotted:  # "Class.method"
                cls, name = dotted.split(".")
                owner = getattr(module, cls)
            original = getattr(owner, name)
            if not getattr(original, "__tlkit_forbidden__", False):
                saved.append((owner, name, original))
                setattr(owner, name, _refusing(original, dotted))
    import tlkit
    exposed = {name: tlkit.__dict__.pop(name) for owner, name, _ in saved
               if owner.__name__.startswith("tlkit") and name in tlkit.__dict__}

    def undo() -> None:
        for module, name, original in saved:
            setattr(module, name, original)
            tlkit.__dict__.pop(name, None)  # tlkit caches a name on first use: the refusing one
        tlkit.__dict__.update(exposed)
    return undo


@contextlib.contextmanager
def forbidden(assignment: str):
    """``forbid`` for the duration of a ``with`` block (the self-checks use it)."""
    undo = forbid(assignment)
    try:
        yield
    finally:
        undo()


def _refusing(original, name: str):
    def refuse(*args, **kwargs):  # no functools.wraps: its __wrapped__ would hand it back
        # tlkit's own use of it stays allowed: judged by the calling code's file, which a
        # notebook cannot claim (its __name__ it could). A module's forward is called through
        # torch's Module.__call__: the caller that counts is the first frame outside torch.
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(_TORCH):
            frame = frame.f_back
        if frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
            return original(*args, **kwargs)
        what = f"tlkit's {name} (the encoder's own, e.g. encoder.neck)" if "." in name \
            else f"tlkit.{name}()"
        raise CheckFailed(f"this task asks you to write it yourself: do not call {what} in "
                          f"your answer.")
    refuse.__name__, refuse.__doc__ = name, original.__doc__
    refuse.__tlkit_forbidden__ = True
    return refuse


def check(check_id: str, *, hidden: bool = False) -> None:
    """Check your work in the calling notebook on the public problem; prints what passed."""
    if hidden or os.environ.get("NBGRADER_EXECUTION") == "autograde":
        print(f"{check_id}: graded outside this notebook, on the grader's own inputs")
        return
    namespace = inspect.currentframe().f_back.f_globals
    from .exercise_checks import CHECKS as _CHECKS
    if check_id not in _CHECKS:
        raise KeyError(f"unknown check {check_id!r}; known: {sorted(_CHECKS)}")
    needs, run = _CHECKS[check_id]
    missing = [name for name in needs if name not in namespace]
    if missing:
        raise CheckFailed(f"`{missing[0]}` is not defined yet: run the cell where you write it "
                          "(and the cells above it) first.")
    assignment = next(a for a in (*FORBIDDEN, "ex03_feature_extraction", "ex05_choose_strategy")
                      if a.startswith(check_id.split(".")[0]))
    with forbidden(assignment):
        try:
            summary = run(namespace, check_id)
        except CheckFailed:
            raise
        except Exception as error:  # the student's code raised: say which and why
            raise CheckFailed(explain(error)) from error
    print(f"✔ {check_id}: {summary}")


def explain(error: BaseException) -> str:
    """A student-facing message for an exception raised by their code."""
    text = f"{type(error).__name__}: {error}"
    if "leaf Variable that requires grad" in text:
        return (f"{text}\nUpdate parameters inside `with torch.no_grad():` — autograd must not "
                "record the update step itself.")
    if isinstance(error, NotImplementedError):
        return "not written yet: replace `raise NotImplementedError()` with your code."
    return f"your code raised {text}"


def keyed(check_id: str, value, what: str) -> str:
    """``what`` if ``value`` is the right answer (by its salted hash); else CheckFailed."""
    table = json.loads(ANSWERS.read_text())
    entry, salt = table["checks"][check_id], table["salt"]
    found = digest(check_id, value, salt=salt)
    if found == entry["ok"]:
        return what
    raise CheckFailed(entry.get("mistakes", {}).get(found, entry["wrong"]))
