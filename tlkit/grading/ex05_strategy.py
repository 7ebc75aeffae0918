"""Checks for ex05_choose_strategy: the four scenarios as a rule, and three short questions.

``choose_strategy(n_per_class=..., similar=...)`` returns ``"feature_extraction"``,
``"fine_tune_top"`` or ``"fine_tune_all"`` following lesson 06's table (small = fewer than
1000 labelled images per class). The check asks about scenarios drawn at grading time.
The written answer in the notebook is graded by hand.
"""
from __future__ import annotations

import numpy as np

from . import Arrays, Check, CheckFailed, register

SMALL = 1000
CHOICES = ("feature_extraction", "fine_tune_top", "fine_tune_all")
QUIZ = {"q1": "b", "q2": "c", "q3": "a"}  # the questions are in the notebook


def rule(*, n_per_class: int, similar: bool) -> str:
    """The reference: the CS231n table of lesson 06."""
    if n_per_class >= SMALL:
        return "fine_tune_all"
    return "feature_extraction" if similar else "fine_tune_top"


def _scenarios(seed: int) -> list[tuple[int, bool]]:
    rng = np.random.default_rng(seed)
    # Every cell of the table at least twice, sizes on a log scale, shuffled.
    cells = [(small, similar) for small in (True, False) for similar in (True, False)] * 2
    out = [(int(rng.integers(2, SMALL)) if small else int(rng.integers(SMALL, 50_000)), similar)
           for small, similar in cells]
    rng.shuffle(out)
    return out


def _rule_probe(ns: dict, seed: int) -> Arrays:
    answers = [str(ns["choose_strategy"](n_per_class=n, similar=s)) for n, s in _scenarios(seed)]
    return {"answers": np.array(answers)}


def _rule_verify(arrays: Arrays, seed: int) -> str:
    scenarios = _scenarios(seed)
    answers = [str(a) for a in arrays["answers"]]
    for (n, similar), got in zip(scenarios, answers, strict=True):
        if got not in CHOICES:
            raise CheckFailed(f"choose_strategy returned {got!r}; it must return one of {CHOICES}.")
        want = rule(n_per_class=n, similar=similar)
        if got != want:
            domain = "similar to" if similar else "different from"
            raise CheckFailed(f"{n} images per class, a domain {domain} ImageNet: you chose "
                              f"{got!r}. Look again at the table in lesson 06.")
    return f"{len(scenarios)} random scenarios answered like the table"


def _quiz_probe(ns: dict, seed: int) -> Arrays:
    return {"answers": np.array([str(ns["answers"].get(q, "")).strip().lower() for q in QUIZ])}


def _quiz_verify(arrays: Arrays, seed: int) -> str:
    wrong = [q for q, got in zip(QUIZ, arrays["answers"]) if str(got) != QUIZ[q]]
    if wrong:
        raise CheckFailed(f"not yet right: {', '.join(wrong)}.")
    return f"all {len(QUIZ)} answers right"


register(Check("ex05.choose_strategy", ("choose_strategy",), _rule_probe, _rule_verify))
register(Check("ex05.quiz", ("answers",), _quiz_probe, _quiz_verify))
