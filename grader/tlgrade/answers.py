"""The salted hashes tlkit's self-checks compare with: ``python -m tlgrade answers``.

Students get feedback on the public problems without an answer key: for each check whose answer
is a value, tlkit ships ``sha256(salt | check | answer)``, as nbgrader's hashed autotests do.
Known mistakes are hashed too, so the self-check can say which one it is. ex01's public problems
are exact in float32 (quarters and eighths), so a right answer hashes the same on any machine.

Example::

    python -m tlgrade answers          # rewrites tlkit/teach/selfcheck_answers.json
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np
from tlkit.teach import exercises as ex
from tlkit.teach import selfcheck
from tlkit.teach.variant import variant

from .checks import Context, get_check
from .ex01_sgd import reference
from .ex05_strategy import rule

__all__ = ["build_table", "write_table"]


def _exact(values: list[np.ndarray], check_id: str) -> list[np.ndarray]:
    # The public problems are built from quarters and eighths: float32 must reproduce float64.
    for v in values:
        if not np.array_equal(np.asarray(v, np.float32).astype(np.float64), v):
            raise ValueError(f"{check_id}: the public answer is not exact in float32; keep the "
                             "problem's numbers to multiples of powers of two")
    return values


def build_table(salt: str) -> dict:
    """Every hashed answer, for the public problems (seed 0, the public variant)."""
    public = Context(0, variant("public"), False)
    h = lambda check_id, value: selfcheck.digest(check_id, value, salt=salt)  # noqa: E731
    checks = {}
    for check_id in ("ex01.sgd_step", "ex01.momentum", "ex01.weight_decay"):
        inputs = get_check(check_id).inputs(public)
        want = _exact(reference(inputs), check_id)
        entry = {"ok": h(check_id, want), "wrong": "not the right values yet: check the update "
                 "rule against the task's formula." if check_id == "ex01.sgd_step" else
                 "not the right values yet: check the order of the updates against "
                 "torch.optim.SGD's documentation (velocity first, then the step)."}
        if check_id == "ex01.sgd_step":
            start = [inputs[f"param/{i}"] for i in range(len(want))]
            entry["mistakes"] = {h(check_id, [2 * s - w for s, w in zip(start, want)]):
                                 "the parameters moved *up* the gradient. w ← w − α·∇L "
                                 "subtracts the step."}
        if check_id == "ex01.weight_decay":
            no_decay = dict(inputs, weight_decay=np.array(0.0))
            entry["mistakes"] = {h(check_id, reference(no_decay)):
                                 "right without weight decay: add λ·w to the gradient first."}
        checks[check_id] = entry
    model = ex.small_mlp(0)
    checks["ex02.count_trainable"] = {
        "ok": h("ex02.count_trainable", [sum(p.numel() for p in model.parameters()
                                             if p.requires_grad)]),
        "wrong": "not the right count: add p.numel() for each parameter with requires_grad."}
    from tlkit.models.surgery import unfreeze_last

    n = ex.finetune_setting(0)["n"]
    trained = [name for name, p in unfreeze_last(ex.finetune_model(0), n).named_parameters()
               if p.requires_grad]
    checks["ex04.unfreeze"] = {
        "ok": h("ex04.unfreeze", trained),
        "wrong": f"with n={n}, the wrong tensors train: exactly the last {n} block(s) "
                 "(`model.blocks[-n:]`, the last one includes the neck) and the head."}
    answers = [rule(n_per_class=k, similar=s) for k, s in ex.strategy_scenarios(0)]
    checks["ex05.choose_strategy"] = {
        "ok": h("ex05.choose_strategy", answers),
        "wrong": "some scenarios get the wrong strategy: look again at the table in lesson 06."}
    return {"salt": salt, "checks": checks}


def write_table(path: Path = selfcheck.ANSWERS) -> Path:
    """Rewrite the table, keeping its salt (a new salt would change every line)."""
    salt = json.loads(path.read_text())["salt"] if path.exists() else secrets.token_hex(16)
    path.write_text(json.dumps(build_table(salt), indent=1, sort_keys=True) + "\n")
    return path
