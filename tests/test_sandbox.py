"""The grader's sandbox and its trust model, piece by piece (tests/test_grading.py grades whole
batches of sample submissions with nbgrader).

What runs inside must see no network, a read-only system, no course folder, no secret and no
test split; what decides a grade never runs inside; a course secret gives each student a
variant, and another student's answers do not fit it.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

pytest.importorskip("tlgrade", reason="the instructor's grader: pip install -e grader")

from tlgrade import grade as grading  # noqa: E402
from tlgrade.sandbox import Sandbox, SandboxMissing  # noqa: E402

ROOT = Path(__file__).parents[1]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (make install installs it)")

PROBE = r"""
import json, os, pathlib, socket, sys
seen = {}
try:
    socket.create_connection(("10.255.255.1", 80), timeout=2); seen["net"] = "open"
except OSError as error:
    seen["net"] = type(error).__name__
try:
    open("/etc/tlgrade-test", "w"); seen["etc"] = "writable"
except OSError:
    seen["etc"] = "read-only"
seen["course"] = sorted(os.listdir(sys.argv[1])) if os.path.isdir(sys.argv[1]) else None
try:
    seen["secret"] = pathlib.Path(sys.argv[2]).read_text()
except OSError as error:
    seen["secret"] = type(error).__name__
seen["uid"] = os.getuid()
pathlib.Path("/tmp/submission/seen.json").write_text(json.dumps(seen))
"""


@pytest.fixture
def outside_tmp():
    """A folder outside /tmp (the sandbox's /tmp is fresh anyway: that would prove nothing)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tlgrade-test-", dir="/var/tmp"))
    yield folder
    shutil.rmtree(folder)


@needs_bwrap
def test_inside_the_sandbox_no_network_no_course_no_secret(tmp_path, outside_tmp, monkeypatch):
    course = outside_tmp / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "gradebook.db").write_text("grades")
    home = outside_tmp / "home"  # the instructor's home, where the secret is: hidden as a whole
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    secret = home / ".tlgrade" / "secret"
    secret.parent.mkdir()
    secret.write_text("s" * 32)
    work, inside = tmp_path / "work", tmp_path / "inside"
    work.mkdir(), inside.mkdir()
    (inside / "probe.py").write_text(PROBE)
    box = Sandbox(hide=[course])
    failure = box.run([sys.executable, "-I", "/tmp/grader/probe.py", str(course), str(secret)],
                      work=work, inside=inside, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
                      timeout=60, log=tmp_path / "log")
    assert failure is None
    assert (work / "seen.json").exists(), (tmp_path / "log").read_text()
    seen = json.loads((work / "seen.json").read_text())
    assert seen["net"] in ("OSError", "ConnectionRefusedError") or "unreachable" in seen["net"]
    assert seen["etc"] == "read-only"
    assert seen["course"] == [] and seen["secret"] in ("", "FileNotFoundError", "PermissionError")
    assert seen["uid"] == 65534


def test_without_bubblewrap_grading_refuses_unless_told_to_run_unsafe(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "inside").mkdir()
    with pytest.raises(SandboxMissing, match="apt-get install bubblewrap.*allow_unsafe"):
        Sandbox().run(["true"], work=tmp_path, inside=tmp_path / "inside", env={}, timeout=5)
    assert Sandbox(unsafe=True).run(["true"], work=tmp_path, inside=tmp_path / "inside",
                                    env={"PATH": "/usr/bin:/bin"}, timeout=5) is None


def _release(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "exercises" / name / f"{name}.ipynb", as_version=4)


def _solved(name: str, **but) -> nbformat.NotebookNode:
    sys.path.insert(0, str(ROOT / "tools"))
    import grade_samples

    nb, source = _release(name), nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb",
                                                as_version=4)
    grade_samples.solve(but=but)(nb, source)
    return nb


@needs_bwrap
def test_the_held_out_faces_cannot_be_looked_up_inside(tmp_path):
    from tlgrade.ex03_features import masks, test_indices

    shown = masks()
    assert shown, "no copy of lfw_subset.npy found to hide"
    for real, content in shown.items():
        original = np.load(real)
        train = np.setdiff1d(np.arange(len(original)), test_indices())
        assert np.array_equal(content[train], original[train])  # training images untouched
        assert (content[test_indices()] == 0.5).all()  # every test image blank


def test_the_held_out_words_cannot_be_looked_up_inside():
    pytest.importorskip("vaderSentiment")
    from tlgrade.ex06_text import masks
    from tlkit.data.text import vader_words

    shown = masks()
    assert shown, "no copy of vader_lexicon.txt found to hide"
    test, train = vader_words("test").texts, vader_words("train").texts
    for real, content in shown.items():
        kept = {line.split("\t")[0] for line in content.decode().splitlines()}
        assert not kept & set(test)  # no held-out word, so no rating to read
        assert set(train) <= kept
        # The lexicon shown inside gives the notebook exactly the training words it gets outside.
        lines = [line.split("\t") for line in content.decode().splitlines()]
        rows = [(t[0], float(t[1]), ()) for t in lines if len(t) >= 4]
        assert vader_words("train", rows=rows).texts == train


@needs_bwrap
def test_a_visible_and_a_hidden_check_score_apart(monkeypatch):
    from tlkit.teach.exercises import sgd_problem

    public_lr = sgd_problem(0, momentum=False, weight_decay=False)["lr"]
    seed = next(s for s in range(1, 100)
                if sgd_problem(s, momentum=False, weight_decay=False)["lr"] != public_lr)
    monkeypatch.setenv("TLKIT_GRADING_SEED", str(seed))
    # Right only for the public problem's learning rate: the visible check passes, not the hidden.
    nb = _solved("ex01_sgd_update", sgd_step=(
        f"def sgd_step(params, *, lr):\n    with torch.no_grad():\n        for p in params:\n"
        f"            p -= {public_lr} * p.grad"))
    source = nbformat.read(ROOT / "solutions/ex01_sgd_update/ex01_sgd_update.ipynb", as_version=4)
    for cell, original in zip(nb.cells, source.cells):  # the hidden tests, as nbgrader restores them
        if original.metadata.get("nbgrader", {}).get("grade"):
            cell.source = original.source
    graded = grading.grade_notebook(nb, assignment="ex01_sgd_update", student="dana", secret=None,
                                    course_id="c", sandbox=Sandbox(), cell_timeout=30)
    assert graded.results[("ex01.sgd_step", False)][0]
    assert not graded.results[("ex01.sgd_step", True)][0]
    assert graded.seeds[("ex01.sgd_step", True)] == seed


@needs_bwrap
def test_each_student_has_a_variant_and_another_students_answers_do_not_fit_it(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import grade_demo

    name = "ex05_choose_strategy"
    secret = grade_demo.demo_secret(tmp_path / "secret")  # fixed: so are the variants
    root = tmp_path / "course"
    root.mkdir()
    scores, samples, code = grade_demo.grade_variants(root, secret)
    # alice: her own letters for her order, 6; bob (alice's notebook) and carol (the public
    # solution): the quiz's 2 points lost — no option keeps its place in another's variant.
    assert scores == {student: score for student, (_, score) in samples.items()}
    release = (root / "exercises" / name / f"{name}.ipynb").read_text()
    assert f'COURSE = \\"{code}\\"' in release  # the release carries the code, not the secret
    assert secret.read_text().strip() not in release
    # Feedback shows the verdicts, never the hidden tests' source (nbgrader #917).
    api = grade_demo.api_for(root, CourseSecret={"path": str(secret)})
    assert api.generate_feedback(name, "alice")["success"]
    html = next((root / "feedback" / "alice" / name).glob("*.html")).read_text()
    assert "hidden=True" not in html and "HIDDEN TESTS" not in html
    assert "ex05.choose_strategy (hidden):" in html  # no seed shown: it comes from the secret


def test_the_grader_reads_back_only_plain_files_the_sandbox_wrote(tmp_path):
    from tlgrade.grade import Graded, _read_notebook, _read_results
    from tlkit.teach.variant import variant

    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    secret = tmp_path / "secret.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), secret)
    (out / "executed.ipynb").symlink_to(secret)  # a link planted by the submission
    assert _read_notebook(out / "executed.ipynb") is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), elsewhere / "executed.ipynb")
    shutil.rmtree(out)
    out.symlink_to(elsewhere)  # or the whole folder swapped for a link
    assert _read_notebook(out / "executed.ipynb") is None
    out.unlink()
    out.mkdir()
    import zipfile
    with zipfile.ZipFile(out / "result.npz", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("x.npy", b"\0" * (600 * 2**20))  # 600 MB unpacked, a few hundred kB here
    graded = Graded(variant("ex01_sgd_update"))
    assert _read_results(out / "result.npz", graded) == ({}, {})
    assert "could not be read" in graded.failure
