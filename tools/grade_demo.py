"""Grade sample submissions end to end with nbgrader, offline: `make grade-samples`.

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
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
import nbformat

from grade_samples import SAMPLES  # noqa: F401  (tools/grade_samples.py; the tests use it too)

ROOT = Path(__file__).resolve().parents[1]
DEMO_SEED = "1"  # the hidden inputs' draw the expected scores are checked with
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()
                     and (p / f"{p.name}.ipynb").exists())

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
        path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        for edit in edits:
            for name, text in (edit(nb, source) or {}).items():  # files handed in beside it
                Path(path.parent, name).parent.mkdir(parents=True, exist_ok=True)
                Path(path.parent, name).write_text(text)
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


def grade_sharded(root: Path, assignment: str, samples: dict, *, shards: int = 2,
                  **overrides) -> tuple[dict, float, list[Path]]:
    """``grade`` in ``shards`` course folders at once (one batch, one gradebook each), for the
    tests' sake: on 2 cores two batches take little more than one. Samples named ``a_…`` share
    the solution's batch (they test what one submission leaves for the next).
    Returns scores, wall seconds and the shards' course folders."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    names = sorted(samples, key=lambda s: (s != "solution" and not s.startswith("a_"), s))
    parts = [names[:len(names) // shards + 1]] if shards > 1 else [names]
    rest = names[len(parts[0]):]
    parts += [rest[i::shards - 1] for i in range(shards - 1)] if shards > 1 else []
    folders = [root / f"shard{i}" for i in range(len(parts))]
    cores = len(os.sched_getaffinity(0))
    overrides.setdefault("SandboxedExecute", {}).setdefault("threads", max(1, cores // len(parts)))
    start = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: nbgrader, sqlite, torch
    with ProcessPoolExecutor(len(parts), mp_context=spawn) as pool:
        futures = []
        for folder, part in zip(folders, parts):
            folder.mkdir(parents=True)
            make_course(folder, [assignment])
            futures.append(pool.submit(_grade_part, folder, assignment, part, overrides))
        scores = {k: v for future in futures for k, v in future.result().items()}
    return scores, time.perf_counter() - start, folders


def _grade_part(folder: Path, assignment: str, names: list[str], overrides: dict) -> dict:
    from grade_samples import SAMPLES as known

    samples = {n: known[assignment][n] for n in names}
    return grade(folder, assignment, samples, **overrides)[0]


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


def sandbox_summary() -> str:
    """What the sandbox is on this machine, in a line."""
    import os
    import subprocess

    from tlgrade.sandbox import _world_readable

    if not shutil.which("bwrap"):
        return "sandbox: bubblewrap is missing — grading will refuse (apt-get install bubblewrap)"
    version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    who = ("as nobody" if os.getuid() != 0 or _world_readable(Path(sys.base_prefix))
           else "as nobody inside its user namespace")
    return (f"sandbox: {version}, {who}: no network, read-only system, private /tmp and home, "
            "no course folder, grader or secret in view")


def grade_variants(root: Path, secret: Path) -> tuple[dict, dict, str]:
    """ex05 with a course secret: alice's own letters, alice's notebook handed in by bob, and the
    public solution; returns (scores, samples, the release's course code)."""
    from grade_samples import solve
    from tlgrade.ex05_strategy import QUIZ
    from tlgrade.secret import course_code
    from tlkit.teach.exercises import QUIZ_OPTIONS
    from tlkit.teach.variant import variant

    name = "ex05_choose_strategy"
    code = course_code(secret.read_bytes().strip(), "transfer-learning")
    v = variant(name, course=code, student="alice")
    letters = {q: "abc"[v.order(q, list(QUIZ_OPTIONS[q])).index(QUIZ[q])] for q in QUIZ}
    print(f"With a course secret, {v}: quiz options in the order "
          + ", ".join(f"{q}: {''.join(v.order(q, list(QUIZ_OPTIONS[q])))}" for q in QUIZ)
          + f"; her answers {letters}")
    own = solve(but={"answers": f"answers = {letters!r}"})
    samples = {"alice": ([own], 6), "bob": ([own], 4),  # bob hands in alice's notebook
               "carol": ([solve()], 4)}  # the public solution
    make_course(root, [name])
    scores, _ = grade(root, name, samples, CourseSecret={"path": str(secret)})
    return scores, samples, code


def demo_secret(path: Path) -> Path:
    """A fixed secret, chmod 600 (`python -m tlgrade secret PATH` makes a real, random one)."""
    import os

    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.write_text("the demo's fixed course secret\n")
    return path


def main(argv: list[str]) -> int:
    names = argv or [a for a in ASSIGNMENTS if a in SAMPLES]
    print(sandbox_summary())
    # The expected scores hold for this draw of the hidden inputs (see tests/test_grading.py);
    # TLKIT_GRADING_SEED=<another> shows a different one.
    os.environ.setdefault("TLKIT_GRADING_SEED", DEMO_SEED)
    print(f"hidden inputs drawn with TLKIT_GRADING_SEED={os.environ['TLKIT_GRADING_SEED']}")
    with tempfile.TemporaryDirectory(prefix="tlkit-grade-demo-") as tmp:
        root = Path(tmp)
        make_course(root, names)
        for name in names:
            scores, seconds = grade(root, name, SAMPLES[name])
            wrong = {s: (scores[s], want) for s, (_, want) in SAMPLES[name].items()
                     if scores[s] != want}
            print(f"{name}: {len(scores)} submissions autograded in {seconds:.0f} s "
                  f"({seconds / len(scores):.1f} s each); "
                  + (f"NOT as expected: {wrong}" if wrong else "every score as expected"))
        print(export_csv(root))
        if "ex05_choose_strategy" in names:
            (root / "variants").mkdir()
            scores, samples, _ = grade_variants(root / "variants", demo_secret(root / "secret"))
            for student, score in scores.items():
                print(f"  {student}: {score:g} of 6 automatic points "
                      f"(expected {samples[student][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
