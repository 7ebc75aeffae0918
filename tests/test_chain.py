"""nbgrader's whole chain with three real Unix accounts (tools/grade_chain.py), step by step.

release → fetch → submit (each as themselves; alice once more in bob's name) → collect →
autograde → generate / release / fetch feedback → export. The run makes the accounts tl-alice,
tl-bob and tl-carol and removes them after; it needs root (useradd, setpriv) and bubblewrap.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
pytest.importorskip("tlgrade", reason="the instructor's grader: pip install -e grader")
import grade_chain  # noqa: E402  (tools/grade_chain.py)
from grade_chain import ASSIGNMENT, COURSE, FORGED, FORGER, LATE, STUDENTS  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("useradd", "setpriv", "bwrap")),
    reason="the chain makes real Unix accounts: run the tests as root, with bubblewrap")


@pytest.fixture(scope="module")
def chain():
    # Not pytest's tmp_path: it is mode 0700 under /tmp/pytest-of-root, out of the students' reach.
    root = Path(tempfile.mkdtemp(prefix="tlgrade-chain-"))
    seed = os.environ.get("TLKIT_GRADING_SEED")
    os.environ["TLKIT_GRADING_SEED"] = "1"  # the samples' scores are checked for this draw
    done = grade_chain.Chain(root)
    try:
        done = grade_chain.run_chain(root, log=lambda *_: None)
        yield done
    finally:
        grade_chain.cleanup(done)
        shutil.rmtree(root, ignore_errors=True)
        if seed is None:
            os.environ.pop("TLKIT_GRADING_SEED")
        else:
            os.environ["TLKIT_GRADING_SEED"] = seed


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def test_release_reaches_every_student_as_their_own_copy(chain):
    released = chain.exchange / COURSE / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert "BEGIN SOLUTION" not in released.read_text()
    for user in STUDENTS:  # (each has worked on it since)
        fetched = chain.home(user) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert fetched.stat().st_uid == _uid(user)
        assert "fetch_assignment" in chain.steps[f"fetch {user}"].args


def test_each_submission_belongs_to_the_account_that_made_it(chain):
    planted = set(chain.planted.values())
    inbound = [p for p in (chain.exchange / COURSE / "inbound").iterdir() if p.name not in planted]
    owners = sorted((p.name.split("+")[0], pwd.getpwuid(p.stat().st_uid).pw_name) for p in inbound)
    assert owners == sorted([(u, u) for u in STUDENTS] + [(FORGED, FORGER)])


def _flagged(chain) -> dict[str, dict]:
    rows = grade_chain.read_csv(chain.course / "flagged_submissions.csv")
    return {r["exchange_file"]: r for r in rows}


def test_a_submission_in_somebody_elses_name_is_flagged_and_not_collected(chain):
    forged = [r for r in _flagged(chain).values() if r["reason"].startswith("submitted by")]
    assert [(r["claimed_student"], r["owner"]) for r in forged] == [(FORGED, FORGER)]
    assert (chain.exchange / COURSE / "inbound" / forged[0]["exchange_file"]).exists()  # evidence
    assert "Not collected" in chain.steps["collect"].stderr
    # bob's own notebook was collected and graded, not alice's newer one in his name.
    collected = nbformat.read(chain.course / "submitted" / FORGED / ASSIGNMENT /
                              f"{ASSIGNMENT}.ipynb", as_version=4)
    assert any("p += lr * p.grad" in c.source for c in collected.cells)


def test_entries_planted_in_the_exchange_are_flagged_and_the_rest_collected(chain):
    flagged = _flagged(chain)
    reasons = {step: flagged[name]["reason"] for step, name in chain.planted.items()}
    assert len(reasons) == 4
    assert reasons["link in carol's name"] == "not a folder (a link or a file)"
    assert "is a link or a special file" in reasons["link to the solutions inside"]
    assert reasons["no valid time"].startswith("its name holds no valid time")
    assert "backdated" in reasons["backdated"]
    assert len(flagged) == len(reasons) + 1  # and the forged one: nothing else
    # Everyone's own work was still collected; alice's is hers, not the instructor's source.
    for user in STUDENTS:
        assert (chain.course / "submitted" / user / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
    alice = (chain.course / "submitted" / "tl-alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert "BEGIN HIDDEN TESTS" not in alice.read_text()


def test_autograde_scores_each_student_and_takes_the_late_penalty(chain):
    rows = {r["student_id"]: r for r in grade_chain.read_csv(chain.course / "grades.csv")}
    assert set(rows) == set(STUDENTS)
    for user, (_, _, raw) in STUDENTS.items():
        row = rows[user]
        assert float(row["raw_score"]) == raw and float(row["max_score"]) == 8
        late = user == LATE
        assert (row["timestamp"] > row["duedate"]) == late
        # 10 % a started day; carol is seconds late: one day.
        assert float(row["late_submission_penalty"]) == pytest.approx(0.1 * raw if late else 0)
        assert float(row["score"]) == pytest.approx(raw * (0.9 if late else 1))


def test_each_student_fetches_their_own_feedback_only(chain):
    for user in STUDENTS:  # generate_feedback, then release_feedback into the exchange
        assert (chain.course / "feedback" / user / ASSIGNMENT / f"{ASSIGNMENT}.html").exists()
    released = list((chain.exchange / COURSE / "feedback").glob("*.html"))
    assert len(released) == len(STUDENTS)
    assert (chain.exchange / COURSE / "feedback").stat().st_mode & 0o777 == 0o711  # not listable
    for user, (_, _, raw) in STUDENTS.items():
        pages = list((chain.home(user) / ASSIGNMENT / "feedback").glob("*/*.html"))
        assert len(pages) == 1, (user, pages)
        assert pages[0].stat().st_uid == _uid(user)
        text = pages[0].read_text()
        shown = re.search(rf"{ASSIGNMENT} \(Score: ([\d.]+) / 8\.0\)", text)
        late = user == LATE
        assert shown and float(shown[1]) == pytest.approx(raw * (0.9 if late else 1)), user
        assert ("Late submission penalty (Score: -0.8)" in text) == late, user
        assert "BEGIN HIDDEN TESTS" not in text and "hidden=True" not in text
    # (bob's one page above was counted after he asked for alice's by her id: nbgrader keys
    # feedback by each submission's secret, kept in the submitter's own home.)
    assert "bob fetches alice's feedback" in chain.steps
    for step in ("bob lists the feedback", "bob reads alice's home", "bob lists the submissions",
                 "bob reads the gradebook"):
        done = chain.steps[step]
        assert done.returncode != 0 and "Permission denied" in done.stderr, step


def test_exports_for_the_lms_agree_with_nbgraders_own(chain):
    final = {r["student_id"]: float(r["score"])
             for r in grade_chain.read_csv(chain.course / "grades.csv")}
    canvas = grade_chain.read_csv(chain.course / "canvas.csv")
    assert list(canvas[0])[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[0]["Student"] == "Points Possible" and float(canvas[0][ASSIGNMENT]) == 8
    assert {r["SIS Login ID"]: float(r[ASSIGNMENT]) for r in canvas[1:]} == final
    assert {r["ID"] for r in canvas[1:]} == {"1001", "1002", "1003"}  # their LMS user ids
    moodle = grade_chain.read_csv(chain.course / "moodle.csv")
    assert {r["username"]: float(r[ASSIGNMENT]) for r in moodle} == final
    assert all(r["email"] == f"{r['username']}@example.org" for r in moodle)
