"""The graded exercises: nbgrader generates them, grades them honestly, and cannot be fooled.

Everything goes through nbgrader's own Python API (NbGraderAPI, Gradebook, Validator) with the
project's nbgrader_config.py, on a throwaway course folder. The sample submissions — the
solution, the untouched release, typical mistakes and cheats — and the score each must get are
in tools/grade_demo.py, which `make grade-demo` runs too.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import grade_demo  # noqa: E402  (tools/grade_demo.py)

pytest.importorskip("nbgrader", reason="the grading extra: pip install -e '.[grading]'")

ASSIGNMENTS = grade_demo.ASSIGNMENTS


def test_five_assignments_each_with_sample_submissions():
    assert ASSIGNMENTS == ["ex01_sgd_update", "ex02_freeze_and_head", "ex03_feature_extraction",
                           "ex04_fine_tuning", "ex05_choose_strategy"]
    assert set(grade_demo.SAMPLES) == set(ASSIGNMENTS)
    for name, samples in grade_demo.SAMPLES.items():
        assert {"solution", "blank"} <= set(samples)
        assert any(s.startswith("mistake_") for s in samples), name
        assert any(s.startswith("cheat_") for s in samples), name


def _cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text())
    return [{k: c.get(k) for k in ("cell_type", "source", "metadata")} for c in nb["cells"]]


def test_exercises_are_exactly_what_nbgrader_generates(tmp_path):
    grade_demo.make_course(tmp_path, ASSIGNMENTS)
    api = grade_demo.api_for(tmp_path)
    for name in ASSIGNMENTS:
        assert api.generate_assignment(name)["success"]
        fresh = tmp_path / "exercises" / name / f"{name}.ipynb"
        committed = ROOT / "exercises" / name / f"{name}.ipynb"
        assert _cells(fresh) == _cells(committed), \
            f"exercises/{name} is stale: run `make exercises` after editing solutions/{name}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_no_solution_or_hidden_test_reaches_the_students(name):
    source = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    path = ROOT / "exercises" / name / f"{name}.ipynb"
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True"):
        assert marker not in path.read_text()
    # Instructions may name a helper; the code students get must not contain the answer.
    released = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                         if c.cell_type == "code")
    for cell in source.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            inside = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            for line in inside.strip().splitlines():
                if len(line.strip()) > 12:  # distinctive lines, not "return x"
                    assert line.strip() not in released, f"solution line leaked: {line!r}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_autograde_gives_each_sample_the_score_it_deserves(name, tmp_path, capsys):
    grade_demo.make_course(tmp_path, [name])
    samples = grade_demo.SAMPLES[name]
    # Shorter limits than the course's, so the endless-loop sample costs half a minute here.
    scores, seconds = grade_demo.grade(tmp_path, name, samples,
                                       Execute={"timeout": 30}, TrustedChecks={"timeout": 30})
    with capsys.disabled():
        print(f"\n{name}: {len(samples)} submissions in {seconds:.0f} s")
    expected = {student: score for student, (_, score) in samples.items()}
    assert scores == expected
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db") as gb:
        maximum = gb.find_assignment(name).max_score
        solution = gb.find_submission(name, "solution")
        written = [g for nb in solution.notebooks for g in nb.grades
                   if g.cell_type == "markdown"]
        # Every autograded point for the solution; a written answer waits for a human.
        assert solution.score == maximum - sum(g.max_score for g in written)
        assert all(g.needs_manual_grade and g.auto_score is None for g in written)
        assert solution.needs_manual_grade == bool(written)
        # Every sample is in the gradebook, even those whose kernel died or hung.
        assert {s.student.id for s in gb.find_assignment(name).submissions} == set(samples)


def test_validator_passes_the_solution_and_flags_the_release(tmp_path):
    from nbgrader.validator import Validator

    name = "ex05_choose_strategy"
    grade_demo.make_course(tmp_path, [name])
    api = grade_demo.api_for(tmp_path)
    assert api.generate_assignment(name)["success"]
    validator = Validator(config=api.config)
    ok = validator.validate(str(tmp_path / "solutions" / name / f"{name}.ipynb"))
    assert not ok.get("failed") and not ok.get("changed"), ok
    blank = validator.validate(str(tmp_path / "exercises" / name / f"{name}.ipynb"))
    assert blank.get("failed"), blank
    assert "NotImplementedError" in json.dumps(blank["failed"])


def test_visible_checks_run_without_nbgrader_and_explain_mistakes():
    """Colab has no nbgrader: the checks must work and say what is wrong."""
    code = """
import sys
sys.modules["nbgrader"] = None  # importing it would fail, as on Colab
import torch
from tlkit.grading import check, CheckFailed

def sgd_step(params, *, lr):
    with torch.no_grad():
        for p in params:
            p += lr * p.grad

try:
    check("ex01.sgd_step")
except CheckFailed as error:
    print("FAILED:", error)
def count_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
check("ex02.count_trainable")
try:
    check("ex05.choose_strategy")
except CheckFailed as error:
    print("FAILED:", error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "FAILED: sgd_step: the parameters moved *up* the gradient" in result.stdout
    assert "✔ ex02.count_trainable (seed 0)" in result.stdout
    assert "FAILED: `choose_strategy` is not defined yet" in result.stdout
