"""ex05_choose_strategy: the four scenarios as a rule, and three short questions.

This module is the answer key: lesson 06's table as its runs left it (``rule``) and the quiz's
answers (``QUIZ``, by option, before a student's variant shuffles the letters). It never leaves
the instructor's side; students' self-checks compare salted hashes of it. The written answer is
graded by hand.
"""
from __future__ import annotations

import numpy as np
from tlkit.teach import exercises as ex

from .checks import Arrays, Check, CheckFailed, Context, register

CHOICES = ("feature_extraction", "earlier_features", "fine_tune_all")
QUIZ = {"q1": "b", "q2": "c", "q3": "a"}  # options as the source notebook letters them


def rule(*, n_per_class: int, similar: bool) -> str:
    """The reference: lesson 06's table. The small row is what the lesson measured (on the far
    domain an earlier block's features beat the last block's and fine-tuning the top); the
    large row (``ex.SMALL`` or more per class) is CS231n's advice, which it cites."""
    if n_per_class >= ex.SMALL:
        return "fine_tune_all"
    return "feature_extraction" if similar else "earlier_features"


def _rule_inputs(ctx: Context) -> Arrays:
    scenarios = ex.strategy_scenarios(ctx.seed)
    return {"n_per_class": np.array([n for n, _ in scenarios]),
            "similar": np.array([s for _, s in scenarios])}


def _rule_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    answers = [str(a) for a in outputs["answers"]]
    scenarios = list(zip(inputs["n_per_class"].tolist(), inputs["similar"].tolist()))
    if len(answers) != len(scenarios):
        raise CheckFailed("choose_strategy did not answer every scenario.")
    for (n, similar), got in zip(scenarios, answers):
        if got not in CHOICES:
            raise CheckFailed(f"choose_strategy returned {got!r}; it must return one of {CHOICES}.")
        if got != rule(n_per_class=n, similar=similar):
            domain = "similar to" if similar else "different from"
            raise CheckFailed(f"{n} images per class, a domain {domain} ImageNet: you chose "
                              f"{got!r}. Look again at the table in lesson 06.")
    return f"{len(scenarios)} scenarios answered like the table"


def _quiz_inputs(ctx: Context) -> Arrays:
    return {"questions": np.array(list(ex.QUIZ_OPTIONS))}


def _quiz_verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    # The letters the student typed name options in *their* variant's order.
    got = dict(zip(outputs["questions"].tolist(), outputs["answers"].tolist()))
    wrong = [q for q in QUIZ if ex.canonical(ctx.variant, q, got.get(q, "")) != QUIZ[q]]
    if wrong:
        raise CheckFailed(f"not yet right: {', '.join(wrong)}" + (
            f" (for {ctx.variant.student}'s order of the options)." if not ctx.variant.public
            else "."))
    return f"all {len(QUIZ)} answers right"


register(Check("ex05.choose_strategy", ("choose_strategy",), "strategy", _rule_inputs,
               _rule_verify))
register(Check("ex05.quiz", ("answers",), "quiz", _quiz_inputs, _quiz_verify))
