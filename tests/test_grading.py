"""The graded exercises: nbgrader generates them, grades them honestly, and cannot be fooled.

Everything goes through nbgrader's own Python API (NbGraderAPI, Gradebook, Validator) with the
project's nbgrader_config.py, on a throwaway course folder. The sample submissions — the
solution, the untouched release, typical mistakes and cheats — and the score each must get are
in tools/grade_demo.py, which `make grade-samples` runs too.
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

pytest.importorskip("tlgrade", reason="the instructor's grader: pip install -e grader")

ASSIGNMENTS = grade_demo.ASSIGNMENTS


def test_six_assignments_each_with_sample_submissions():
    assert ASSIGNMENTS == ["ex01_sgd_update", "ex02_freeze_and_head", "ex03_feature_extraction",
                           "ex04_fine_tuning", "ex05_choose_strategy", "ex06_text_transfer"]
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
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True",
                   "tlgrade"):
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
def test_autograde_gives_each_sample_the_score_it_deserves(name, tmp_path, capsys, monkeypatch):
    samples = grade_demo.SAMPLES[name]
    # Without a course secret hidden inputs are drawn anew at each grading. A mistake at the
    # edge of a check (batch norm left training: does the loss still fall by 10 %?) would then
    # score by the draw, so the draw is fixed here, as `make grade-samples` fixes it.
    monkeypatch.setenv("TLKIT_GRADING_SEED", grade_demo.DEMO_SEED)
    # Shorter limits than the course's, so the endless loop costs 10 s here (ex01's cells are
    # tiny; the others train Lite0 in a cell). Two batches at once, each with its gradebook.
    timeout = 10 if name == "ex01_sgd_update" else 40
    scores, seconds, folders = grade_demo.grade_sharded(tmp_path, name, samples,
                                                        SandboxedExecute={"timeout": timeout})
    with capsys.disabled():
        print(f"\n{name}: {len(samples)} submissions in {seconds:.0f} s (2 batches at once)")
    expected = {student: score for student, (_, score) in samples.items()}
    assert scores == expected
    from nbgrader.api import Gradebook
    graded = set()
    for folder in folders:
        with Gradebook(f"sqlite:///{folder}/gradebook.db") as gb:
            submissions = gb.find_assignment(name).submissions
            graded |= {s.student.id for s in submissions}
            # No submission wrote to the gradebook (one tries).
            assert all(g.manual_score is None for s in submissions for nb in s.notebooks
                       for g in nb.grades)
            if not any(s.student.id == "solution" for s in submissions):
                continue
            maximum = gb.find_assignment(name).max_score
            solution = gb.find_submission(name, "solution")
            written = [g for nb in solution.notebooks for g in nb.grades
                       if g.cell_type == "markdown"]
            # Every autograded point for the solution; a written answer waits for a human.
            assert solution.score == maximum - sum(g.max_score for g in written)
            assert all(g.needs_manual_grade and g.auto_score is None for g in written)
            assert solution.needs_manual_grade == bool(written)
    # Every sample is in a gradebook, even those whose kernel died, hung or killed the grader.
    assert graded == set(samples)


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
    """Colab has no nbgrader and no grader: the self-checks must work and say what is wrong."""
    code = """
import sys
sys.modules["nbgrader"] = sys.modules["tlgrade"] = None  # importing them fails, as on Colab
import torch, tlkit
from tlkit.teach.selfcheck import check, CheckFailed

def sgd_step(params, *, lr):
    with torch.no_grad():
        for p in params:
            p += lr * p.grad

try:
    check("ex01.sgd_step")
except CheckFailed as error:
    print("FAILED:", error)
def sgd_step(params, *, lr):
    tlkit.sgd_step(params, lr)
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
    assert "FAILED: the parameters moved *up* the gradient" in result.stdout
    assert "FAILED: this task asks you to write it yourself: do not call tlkit.sgd_step()" \
        in result.stdout
    assert "✔ ex02.count_trainable" in result.stdout
    assert "FAILED: `choose_strategy` is not defined yet" in result.stdout


def test_nothing_a_student_installs_holds_an_answer_key():
    import tomllib

    import tlkit
    from tlgrade.answers import build_table
    from tlkit.teach import selfcheck

    package = Path(tlkit.__file__).parent
    assert not (package / "grading").exists()
    shipped = "\n".join(p.read_text() for p in package.rglob("*") if p.suffix in (".py", ".json"))
    for answer in ('"q1": "b"', "earlier_features", "def rule(", "QUIZ = {"):
        if answer == "earlier_features":  # the choices may be named, not the table of answers
            assert "earlier_features" not in selfcheck.ANSWERS.read_text()
        else:
            assert answer not in shipped, answer
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    every = deps["dependencies"] + [d for ds in deps["optional-dependencies"].values() for d in ds]
    assert not any(d.startswith(("nbgrader", "tlgrade")) for d in every)
    # The hashed table is what the grader's references give, not numbers typed in by hand.
    table = json.loads(selfcheck.ANSWERS.read_text())
    assert table == build_table(table["salt"])


def test_ex05_rubric_shows_in_the_formgrader_not_to_students(tmp_path, monkeypatch):
    """The written answer's rubric (a mark scheme in its task cell): in the notebook the
    formgrader renders for a grader, never in the release or in the feedback."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.api import Gradebook
    from nbgrader.server_extensions.formgrader import handlers

    name = "ex05_choose_strategy"
    monkeypatch.setenv("TLKIT_GRADING_SEED", grade_demo.DEMO_SEED)
    rubric = "Rubric (4 points, one per line"
    assert rubric not in (ROOT / "exercises" / name / f"{name}.ipynb").read_text()
    grade_demo.make_course(tmp_path, [name])
    scores, _ = grade_demo.grade(tmp_path, name, {"alice": grade_demo.SAMPLES[name]["solution"]})
    assert scores == {"alice": 6}
    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db") as gb:
        task = gb.find_grade("justification", name, name, "alice")
        assert task.max_score == 4 and task.needs_manual_grade  # a person grades it, by the rubric
    autograded = tmp_path / "autograded" / "alice" / name / f"{name}.ipynb"
    exporter = HTMLExporter(template_name="formgrade",  # what the formgrader's page renders
                            extra_template_basedirs=[handlers.template_path])
    page, _ = exporter.from_filename(str(autograded), resources={
        "assignment_id": name, "notebook_id": name, "submission_id": "x", "index": 0,
        "total": 1, "base_url": "/", "student": "alice", "last_name": "", "first_name": "",
        "notebook_path": "x"})
    assert rubric in page and "Learning rates" in page
    api = grade_demo.api_for(tmp_path)
    assert api.generate_feedback(name, "alice")["success"]
    feedback = (tmp_path / "feedback" / "alice" / name / f"{name}.html").read_text()
    assert rubric not in feedback and "MARK SCHEME" not in feedback
    assert "Your project, justified" in feedback  # the task itself is there
