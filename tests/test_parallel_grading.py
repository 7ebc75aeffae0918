"""Parallel autograding (tlgrade.parallel): the serial run's grades, merged into the course's
gradebook, and nothing lost when a worker dies. Plus the late penalty and the LMS exports."""
from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
pytest.importorskip("tlgrade", reason="the instructor's grader: pip install -e grader")
import grade_demo  # noqa: E402
from autograde import grades  # noqa: E402  (bench/autograde.py: every cell's grade)
from tlgrade.parallel import WORKER, autograde  # noqa: E402

NAME = "ex01_sgd_update"
SAMPLES = grade_demo.SAMPLES[NAME]


def _course(root: Path, students: dict, secret: Path):
    grade_demo.make_course(root, [NAME])
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.CourseSecret.path = {str(secret)!r}\n")
    api = grade_demo.api_for(root)
    assert api.generate_assignment(NAME)["success"]
    grade_demo.write_submissions(root, NAME, students)
    return api


@pytest.fixture
def secret(tmp_path):
    return grade_demo.demo_secret(tmp_path / "secret")


def _hand_in_late(root: Path, student: str) -> None:
    """A submission time one day after the due date (nbgrader reads timestamp.txt)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root}/gradebook.db", "transfer-learning") as gb:
        gb.update_or_create_assignment(NAME, duedate=datetime.datetime(2026, 12, 1, 12, 0))
    (root / "submitted" / student / NAME / "timestamp.txt").write_text(
        "2026-12-02 12:00:01.000000 UTC")


def test_parallel_grades_equal_the_serial_run_and_land_in_the_course_gradebook(tmp_path, secret):
    students = {name: SAMPLES[name] for name in
                ("solution", "blank", "mistake_sign", "cheat_kill_grader_over_mistake")}
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    serial.mkdir(), parallel.mkdir()
    for root in (serial, parallel):
        _course(root, students, secret)
        _hand_in_late(root, "solution")  # two days late: 20 % off
    grade_demo.api_for(serial).autograde(NAME, "*")  # nbgrader's own, one after another
    report = autograde(course=parallel, assignment=NAME, workers=2, log=lambda *_: None)
    assert report.graded == sorted(students) and not report.failed and not report.retried
    ours = grades(parallel / "gradebook.db", NAME)
    assert ours == grades(serial / "gradebook.db", NAME)  # scores, comments, penalties, times
    assert {s: v[0] for s, v in ours.items()} == {s: want for s, (_, want) in students.items()}
    assert ours["solution"][3] == (pytest.approx(1.6),)  # 20 % of 8
    for student in students:  # the autograded notebooks are in the course folder too
        assert (parallel / "autograded" / student / NAME / f"{NAME}.ipynb").exists()
    assert not (parallel / ".tlgrade-parallel").exists()


def _courses(gb) -> list[str]:
    from nbgrader.api import Course

    return sorted(c.id for c in gb.db.query(Course))


def test_grading_again_keeps_a_manual_grade_and_skips_what_is_unchanged(tmp_path, secret):
    from nbgrader.api import Gradebook

    students = {"ann": SAMPLES["solution"], "ben": SAMPLES["mistake_sign"]}
    _course(tmp_path, students, secret)
    assert autograde(course=tmp_path, assignment=NAME, workers=2, log=lambda *_: None).graded \
        == ["ann", "ben"]
    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db", "transfer-learning") as gb:
        cell = gb.find_submission(NAME, "ben").notebooks[0].grades[0]
        cell.manual_score = 0.5  # a grader's override in the formgrader
        gb.db.commit()
        which = cell.name
        courses = _courses(gb)  # (nbgrader's generate_assignment adds a "default_course")
    lines = []
    again = autograde(course=tmp_path, assignment=NAME, workers=2, log=lines.append)
    assert again.graded == [] and any("unchanged" in line for line in lines)  # as nbgrader
    forced = autograde(course=tmp_path, assignment=NAME, workers=2, force=True,
                       log=lambda *_: None)
    assert forced.graded == ["ann", "ben"]
    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db", "transfer-learning") as gb:
        cell = gb.find_grade(which, NAME, NAME, "ben")
        assert cell.manual_score == 0.5 and cell.needs_manual_grade  # kept, flagged for review
        assert _courses(gb) == courses  # the merge adds no course of its own


def _workers() -> dict[int, str]:
    """pid -> working folder of each parallel-autograde worker running now."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and WORKER.encode() in (entry / "cmdline").read_bytes():
                found[int(entry.name)] = os.readlink(entry / "cwd")
        except OSError:
            continue
    return found


def test_a_dead_worker_loses_nothing(tmp_path, secret):
    students = {f"s{i}": SAMPLES["solution"] for i in range(6)}  # 3 per worker
    _course(tmp_path, students, secret)
    killed = []

    def kill_the_first_worker_after_one_grade():
        shard = tmp_path / ".tlgrade-parallel" / NAME / "round0" / "shard0"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if len(list((shard / "done").glob("*"))) >= 1:  # one student graded and saved
                for pid, cwd in _workers().items():
                    if Path(cwd) == shard.resolve():
                        try:
                            os.kill(pid, signal.SIGKILL)
                            killed.append(pid)
                        except ProcessLookupError:  # it finished first: the test says so
                            killed.append(None)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_worker_after_one_grade)
    killer.start()
    lines = []
    report = autograde(course=tmp_path, assignment=NAME, workers=2, log=lines.append)
    killer.join()
    assert killed and killed[0] is not None, "the worker was never seen running"
    assert any("ended with -9" in line for line in lines), lines
    assert report.graded == sorted(students) and not report.failed
    assert report.retried  # the killed worker's unfinished student, graded again
    assert {s: v[0] for s, v in grades(tmp_path / "gradebook.db", NAME).items()} == \
        {s: 8.0 for s in students}


def test_late_penalty_per_started_day():
    from tlgrade.late import PenaltyPerDay

    plugin = PenaltyPerDay(percent_per_day=10, grace_seconds=60)
    day = 86400
    assert plugin.late_submission_penalty("a", 8.0, 0) == 0
    assert plugin.late_submission_penalty("a", 8.0, 59) == 0  # within the grace period
    assert plugin.late_submission_penalty("a", 8.0, 61) == pytest.approx(0.8)
    assert plugin.late_submission_penalty("a", 8.0, 2 * day + 1) == pytest.approx(2.4)
    assert plugin.late_submission_penalty("a", 8.0, 30 * day) == 8.0  # never below zero


def test_lms_exports_from_a_gradebook(tmp_path):
    import csv

    from nbgrader.api import Gradebook
    from tlgrade.export import CanvasExport, MoodleExport

    due = datetime.datetime(2026, 12, 1, 12, 0)
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        gb.add_assignment("hw1", duedate=due)
        gb.add_notebook("hw1", "hw1")
        gb.add_grade_cell("q1", "hw1", "hw1", max_score=10, cell_type="code")
        gb.add_student("ann", first_name="Ann", last_name="Lee", email="ann@x.org", lms_user_id="77")
        gb.add_student("ben")  # never handed in: 0
        gb.add_submission("hw1", "ann", timestamp=due + datetime.timedelta(hours=1))
        grade = gb.find_grade("q1", "hw1", "hw1", "ann")
        grade.auto_score = 9.0
        gb.find_submission_notebook("hw1", "hw1", "ann").late_submission_penalty = 0.9
        gb.db.commit()
        CanvasExport(to=str(tmp_path / "canvas.csv")).export(gb)
        MoodleExport(to=str(tmp_path / "moodle.csv")).export(gb)
    canvas = list(csv.reader(open(tmp_path / "canvas.csv")))
    assert canvas == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "hw1"],
                      ["Points Possible", "", "", "", "", "10"],
                      ["Lee, Ann", "77", "", "ann", "", "8.1"], ["ben", "", "", "ben", "", "0"]]
    moodle = list(csv.reader(open(tmp_path / "moodle.csv")))
    assert moodle == [["username", "email", "hw1"], ["ann", "ann@x.org", "8.1"], ["ben", "", "0"]]
