"""A variant of an exercise per student: the same task, with its own data and question order.

nbgrader hands every student the same notebook, so one student's answers fit everybody's. A
*variant* draws the parts of a task that may differ — which training images, the order of a
quiz's options — from (course, student, assignment). An instructor's release carries a course
code (derived from a secret only the instructor holds); the repository's own release carries
none, and then everybody — self-learners, Colab — gets the one public variant.

The student's id is ``$TLKIT_STUDENT``, else JupyterHub's ``$JUPYTERHUB_USER``, else the id
typed once with ``set_student_id("...")`` (kept in ``~/.config/tlkit/student``).

Example (an exercise's set-up cell)::

    V = tlkit.variant("ex05_choose_strategy", course=COURSE)   # COURSE: None, or the release's code
    V.order("q1", ["a", "b", "c"])   # this student's order of q1's options
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Variant", "variant", "set_student_id", "student_id"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def _id_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "tlkit" / "student"


def set_student_id(student: str) -> None:
    """Remember your student id on this machine (needed once, where JupyterHub does not say it)."""
    student = _checked(student)
    path = _id_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(student + "\n")
    print(f"Saved: your student id is {student!r} ({path}). Run the notebook again from the top.")


def student_id() -> str | None:
    """This student's id: $TLKIT_STUDENT, $JUPYTERHUB_USER, or the saved one; None if unknown."""
    for name in ("TLKIT_STUDENT", "JUPYTERHUB_USER"):  # as given: any id nbgrader or a hub uses
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    path = _id_file()
    if path.is_file() and path.read_text().strip():
        return _checked(path.read_text().strip())
    return None


def _checked(student: object) -> str:
    if not isinstance(student, str) or not _ID.match(student):
        raise ValueError(f"a student id is letters, digits and . _ @ + - (at most 64), got "
                         f"{student!r}; e.g. set_student_id('alice')")
    return student


@dataclass(frozen=True)
class Variant:
    """One student's variant of one assignment: a seed, and what is drawn from it."""

    assignment: str
    student: str | None  # None: the public variant
    seed: int

    @property
    def public(self) -> bool:
        return self.student is None

    def rng(self, what: str) -> np.random.Generator:
        """A generator for one part of the task (``what`` keeps the parts independent)."""
        digest = hashlib.sha256(f"{self.seed}:{what}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "big"))

    def order(self, what: str, options: Sequence[str]) -> list[str]:
        """``options`` in this variant's order (the public variant keeps them as they are).

        No option keeps its public place, so the public answers fit no student's variant.
        """
        options = list(options)
        if self.public or len(options) < 2:
            return options
        rng = self.rng(what)
        while True:  # a derangement: one in e ≈ 2.7 permutations is one
            order = rng.permutation(len(options))
            if not (order == np.arange(len(options))).any():
                return [options[i] for i in order]

    def __repr__(self) -> str:
        who = "public variant (no course code)" if self.public else f"student {self.student!r}"
        return f"Variant({self.assignment}: {who}, seed {self.seed})"


def variant(assignment: str, *, course: str | None = None, student: str | None = None) -> Variant:
    """The variant of ``assignment`` for this student, or the public one when ``course`` is None.

    Example: ``V = variant("ex03_feature_extraction", course=COURSE)``
    """
    if not isinstance(assignment, str) or not assignment:
        raise TypeError(f"assignment must be the assignment's name, got {assignment!r}")
    if course is None:
        return Variant(assignment, None, 0)
    if not isinstance(course, str) or not course:
        raise TypeError(f"course must be the code in your release's set-up cell, got {course!r}")
    student = student if student is not None else student_id()
    if student is not None and (not isinstance(student, str) or not student.strip()):
        raise ValueError(f"student must be a non-empty id, got {student!r}")
    if student is None:
        raise RuntimeError("This release gives every student a variant, and it does not know who "
                           "you are. Run once: tlkit.set_student_id('<your student id>') — "
                           "the id your instructor uses — then run the notebook again.")
    digest = hashlib.sha256(f"{course}:{assignment}:{student}".encode()).digest()
    return Variant(assignment, student, int.from_bytes(digest[:4], "big") % 2**31)
