"""Grade sample submissions end to end with nbgrader, offline: `make grade-demo`.

Builds a throwaway course folder (nbgrader_config.py + solutions/), generates the student
versions, writes one submission per sample student — the solution, the untouched release,
typical mistakes and cheats — autogrades them all in one batch and prints the grades CSV.
The tests (tests/test_grading.py) use the same submissions and expect the scores in SAMPLES.

    python tools/grade_demo.py                    # every assignment
    python tools/grade_demo.py ex01_sgd_update    # one
"""
from __future__ import annotations

import csv
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()
                     and (p / f"{p.name}.ipynb").exists())

Edit = Callable[[nbformat.NotebookNode, nbformat.NotebookNode], None]


# --- building submissions: start from the release, fill in (parts of) the solution -----------

def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def solve(*, but: dict[str, str] | None = None) -> Edit:
    """Copy every solution from the source, replacing the cells named in ``but``."""
    def edit(nb, source):
        answers = {grade_id(c): c.source for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        answers.update(but or {})
        for cell in nb.cells:
            if grade_id(cell) in answers:
                cell.source = answers[grade_id(cell)]
    return edit


def add_cell(code: str, *, first: bool = False) -> Edit:
    """A new cell of the student's own, at the start (after the imports) or at the end."""
    def edit(nb, source):
        cell = nbformat.v4.new_code_cell(code)
        nb.cells.insert(3 if first else len(nb.cells), cell)
    return edit


def tamper_tests(how: str) -> Edit:
    """Replace every test cell's code with ``pass`` ("pass"), or delete the test cells ("delete")."""
    def edit(nb, source):
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                 and c.cell_type == "code"]
        for cell in tests:
            if how == "pass":
                cell.source = "pass"
            else:
                nb.cells.remove(cell)
    return edit


CHEAT_PATCH = """\
import math, unittest, numpy, torch, tlkit, tlkit.grading
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
unittest.TestCase.assertEqual = lambda *a, **k: None
tlkit.grading.check = lambda *a, **k: print("all tests passed")
tlkit.grading.run_check = lambda *a, **k: "passed"
"""
CHEAT_SILENCE = """\
import sys
get_ipython().showtraceback = lambda *a, **k: None
get_ipython()._showtraceback = lambda *a, **k: None
sys.excepthook = lambda *a: None
"""
CHEAT_SKIP = "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])"

# The cheats that apply to any assignment -> the score each must leave a submission with one
# mistake (ex01's sign error, worth 4 of 8): never more. Where the cheat stops the notebook
# before its functions exist (an exit, a loop, every later cell skipped), less: 0.
CHEATS: dict[str, tuple[list[Edit], float]] = {
    "cheat_patch_helpers": ([add_cell(CHEAT_PATCH, first=True)], 4),
    "cheat_silence_errors": ([add_cell(CHEAT_SILENCE, first=True)], 4),
    "cheat_skip_later_cells": ([add_cell(CHEAT_SKIP, first=True)], 0),
    "cheat_os_exit": ([add_cell("import os\nos._exit(0)", first=True)], 0),
    "cheat_sys_exit": ([add_cell("import sys\nsys.exit(0)", first=True)], 4),
    "cheat_endless_loop": ([add_cell("while True:\n    pass", first=True)], 0),
    "cheat_tests_pass": ([tamper_tests("pass")], 4),
    "cheat_tests_deleted": ([tamper_tests("delete")], 4),
}

def mutate(source: str, old: str, new: str) -> str:
    """``source`` with one mistake put in (fails loudly if ``old`` is not there)."""
    assert old in source, old
    return source.replace(old, new)


_EX04_PREPARE = """def prepare(model, *, n, lr_backbone, lr_head):
    tlkit.unfreeze_last(model, n)
    head = list(model.head.parameters())
    body = [p for p in model.parameters() if p.requires_grad and not any(p is h for h in head)]
    return torch.optim.SGD([{"params": body, "lr": lr_backbone}, {"params": head, "lr": lr_head}], momentum=0.9)"""
_EX04_TRAIN = """def train_steps(model, optimizer, images, labels, *, steps):
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses"""

SIGN_MISTAKE = solve(but={"sgd_step": "def sgd_step(params, *, lr):\n    with torch.no_grad():\n"
                                      "        for p in params:\n            p += lr * p.grad"})

# assignment -> sample student -> (edits, the autograded score that student must get)
SAMPLES: dict[str, dict[str, tuple[list[Edit], float]]] = {
    "ex01_sgd_update": {
        "solution": ([solve()], 8),
        "blank": ([], 0),
        "mistake_sign": ([SIGN_MISTAKE], 4),
        "mistake_no_grad": ([solve(but={"sgd_step": "def sgd_step(params, *, lr):\n    for p in params:\n        p -= lr * p.grad"})], 4),
        "mistake_no_weight_decay": ([solve(but={"sgd_momentum_step": "def sgd_momentum_step(params, velocities, *, lr, momentum, weight_decay=0.0):\n    with torch.no_grad():\n        for p, v in zip(params, velocities):\n            v.mul_(momentum).add_(p.grad)\n            p -= lr * v"})], 6),
        "solution_then_os_exit": ([solve(), add_cell("import os\nos._exit(0)")], 0),
        "solution_silencing_errors": ([solve(), add_cell(CHEAT_SILENCE, first=True)], 8),
        **{f"{name}_over_mistake": ([SIGN_MISTAKE, *edits], score)
           for name, (edits, score) in CHEATS.items()},
        # A blank notebook that cheats scores 0.
        **{name: (CHEATS[name][0], 0) for name in ("cheat_patch_helpers", "cheat_silence_errors",
                                                    "cheat_tests_deleted")},
    },
    "ex02_freeze_and_head": {
        "solution": ([solve()], 8),
        "blank": ([], 0),
        "mistake_head_frozen_too": ([solve(but={"build_classifier": "def build_classifier(num_classes):\n    model = tlkit.get_backbone('efficientnet_lite0')\n    tlkit.replace_head(model, num_classes)\n    model.requires_grad_(False)\n    return model"})], 5),
        "mistake_counts_everything": ([solve(but={"count_trainable": "def count_trainable(model):\n    return sum(p.numel() for p in model.parameters())"})], 6),
        "mistake_random_weights": ([solve(but={"build_classifier": "def build_classifier(num_classes):\n    model = tlkit.get_backbone('efficientnet_lite0', weights=None)\n    tlkit.freeze(model)\n    tlkit.replace_head(model, num_classes)\n    return model"})], 5),
        "cheat_silence_errors": (CHEATS["cheat_silence_errors"][0], 0),
    },
    "ex03_feature_extraction": {
        "solution": ([solve()], 8),
        "blank": ([], 0),
        "mistake_labels_shuffled": ([solve(but={"predict": "train_x, train_y = tlkit.extract_features(model, train, progress=False)\nshuffled = np.random.default_rng(0).permutation(train_y.numpy())\nclassifier = LogisticRegression(max_iter=2000).fit(train_x.numpy(), shuffled)\n\ndef predict(images):\n    return classifier.predict(features(images))"})], 3),
        "cheat_patch_helpers": (CHEATS["cheat_patch_helpers"][0], 0),
    },
    "ex04_fine_tuning": {
        "solution": ([solve()], 10),
        "blank": ([], 0),
        "mistake_one_rate_for_all": ([solve(but={"prepare": mutate(_EX04_PREPARE, 'return torch.optim.SGD([{"params": body, "lr": lr_backbone}, {"params": head, "lr": lr_head}], momentum=0.9)', 'return torch.optim.SGD(body + head, lr=lr_head, momentum=0.9)')})], 7),
        "mistake_batchnorm_trains": ([solve(but={"train_steps": mutate(_EX04_TRAIN, "model.train()", "model.train()\n    tlkit.set_batchnorm(model, 'train')")})], 8),
        "mistake_no_optimizer_step": ([solve(but={"train_steps": mutate(_EX04_TRAIN, "        optimizer.step()\n", "")})], 7),
        "cheat_silence_errors": (CHEATS["cheat_silence_errors"][0], 0),
    },
    "ex05_choose_strategy": {
        "solution": ([solve()], 6),  # + the written answer, which waits for a human
        "blank": ([], 0),
        "mistake_domains_swapped": ([solve(but={"choose_strategy": "def choose_strategy(*, n_per_class, similar):\n    if n_per_class >= 1000:\n        return 'fine_tune_all'\n    return 'fine_tune_top' if similar else 'feature_extraction'"})], 2),
        "cheat_tests_deleted": (CHEATS["cheat_tests_deleted"][0], 0),
    },
}


# --- the course folder and the batch ----------------------------------------------------------

def make_course(root: Path, assignments: list[str]) -> None:
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for name in assignments:
        shutil.copytree(ROOT / "solutions" / name, root / "solutions" / name)


def api_for(root: Path, **overrides):
    """An NbGraderAPI on ``root`` with the project's nbgrader_config.py (plus overrides)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import Config, PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    config.merge(Config(overrides))
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def write_submissions(root: Path, assignment: str, samples: dict) -> None:
    source = nbformat.read(root / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    release = root / "exercises" / assignment / f"{assignment}.ipynb"
    for student, (edits, _) in samples.items():
        nb = nbformat.read(release, as_version=4)
        for edit in edits:
            edit(nb, source)
        path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)


def grade(root: Path, assignment: str, samples: dict, **overrides) -> tuple[dict, float]:
    """Generate, submit and autograde one assignment in one batch; returns scores and seconds."""
    from nbgrader.api import Gradebook

    api = api_for(root, **overrides)
    result = api.generate_assignment(assignment)
    assert result["success"], result.get("log")
    write_submissions(root, assignment, samples)
    start = time.perf_counter()
    api.autograde(assignment, "*")  # one batch: a failing student must not stop the others
    seconds = time.perf_counter() - start
    with Gradebook(api.coursedir.db_url) as gb:
        scores = {s: gb.find_submission(assignment, s).score for s in samples}
    return scores, seconds


def export_csv(root: Path) -> str:
    from nbgrader.api import Gradebook

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["assignment", "student", "score", "max_score", "needs_manual_grade"])
    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                writer.writerow([assignment.name, submission.student.id, submission.score,
                                 submission.max_score, submission.needs_manual_grade])
    return out.getvalue()


def main(argv: list[str]) -> int:
    names = argv or [a for a in ASSIGNMENTS if a in SAMPLES]
    with tempfile.TemporaryDirectory(prefix="tlkit-grade-demo-") as tmp:
        root = Path(tmp)
        make_course(root, names)
        for name in names:
            scores, seconds = grade(root, name, SAMPLES[name])
            print(f"{name}: {len(scores)} submissions autograded in {seconds:.0f} s "
                  f"({seconds / len(scores):.1f} s each)")
        print(export_csv(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
