"""Every lesson notebook follows the course's conventions; the Colab cell is safe."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebooks  # noqa: E402  (tools/notebooks.py)

LESSONS = sorted((ROOT / "course").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_in_sync_with_the_repository_address():
    assert notebooks.main(["check"]) == 0


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_structure(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert notebooks.colab_badge(path) in first.source
    assert "objectives" in first.source.lower() or "you will" in first.source.lower()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "colab-install" in code[0].metadata.get("tags", [])  # the first code cell
    assert "FULL = False" in code[1].source and "tlkit.setup(full=FULL)" in code[1].source
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "plt.show()" in sources or "tlkit.plot_" in sources, "no figure"
    assert "tlkit.quiz(" in sources, "no check-your-understanding questions"
    assert all(not c.outputs for c in nb.cells if c.cell_type == "code"), "outputs not stripped"


def test_colab_cell_installs_tlkit_only_on_colab(monkeypatch, capsys):
    source = notebooks.install_source("https://github.com/someone/fork")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(source, {})
    assert calls == []

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(source, {})
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[-1] == "tlkit[text] @ git+https://github.com/someone/fork"
    # Nothing that would replace Colab's own torch or Jupyter is asked for.
    assert not any(word in " ".join(command) for word in ("torch", "jupyter", "notebook",
                                                          "nbgrader", "--upgrade", "-U"))


def test_badge_points_at_the_file_in_the_repository():
    badge = notebooks.colab_badge(ROOT / "course" / "00_start_here.ipynb",
                                  "https://github.com/org/repo")
    assert badge.endswith("(https://colab.research.google.com/github/org/repo/blob/main/"
                          "course/00_start_here.ipynb)")
    # An exercise's source notebook opens the student version, which is what students get.
    source = ROOT / "solutions" / "ex01_sgd_update" / "ex01_sgd_update.ipynb"
    assert notebooks.colab_badge(source, "https://github.com/org/repo").endswith(
        "/blob/main/exercises/ex01_sgd_update/ex01_sgd_update.ipynb)")


def test_exercises_carry_the_badge_and_the_colab_install_cell():
    for path in sorted((ROOT / "exercises").glob("ex*/ex*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert notebooks.colab_badge(path) in nb.cells[0].source, path.name
        assert "colab-install" in nb.cells[1].metadata.get("tags", []), path.name
        assert nb.cells[1].source == notebooks.install_source(), path.name


def _headings(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [line.lstrip("#").strip() for c in nb.cells if c.cell_type == "markdown"
            for line in c.source.splitlines() if line.startswith("#")]


def test_syllabus_points_at_sections_that_exist():
    """Every "NN → Section" in docs/syllabus.md names a heading of lesson NN (renames break it)."""
    import re

    headings = {p.name[:2]: _headings(p) for p in LESSONS}
    rows = [line.split("|") for line in (ROOT / "docs/syllabus.md").read_text().splitlines()
            if line.startswith("| ") and re.search(r"\| \d\d → ", line)]
    assert len(rows) >= 25
    missing = []
    for row in rows:
        lesson = None
        for part in row[2].split(";"):
            part = part.strip()
            match = re.match(r"(\d\d) → (.*)", part)
            if match:
                lesson, part = match.groups()
            elif re.match(r"\d\d\b", part) or part.startswith("`"):
                continue  # "05 (forgetting…)" or "`make demo`": not a section reference
            name = part.split(" (")[0].strip()
            if not any(h.startswith(name) or name.startswith(h) for h in headings[lesson]):
                missing.append(f"{lesson} → {name}")
    assert not missing, f"docs/syllabus.md names sections no lesson has: {missing}"


def test_readme_badges_open_lesson_00_on_binder_and_colab():
    readme = (ROOT / "README.md").read_text()
    assert notebooks.readme_badges() in readme
    binder = notebooks.binder_url("https://github.com/someone/fork")
    assert binder == ("https://mybinder.org/v2/gh/someone/fork/HEAD"
                      "?urlpath=lab/tree/course/00_start_here.ipynb")
    assert (ROOT / "course" / "00_start_here.ipynb").exists()


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu-runtime", "gpu-runtime"])
def test_lessons_on_colab_notice_the_gpu_or_say_there_is_none(gpu, monkeypatch, capsys):
    import torch

    import tlkit.teach.course

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(tlkit.teach.course, "default_device",
                        lambda: torch.device("cuda" if gpu else "cpu"))
    monkeypatch.delenv("TLKIT_FULL", raising=False)
    course = tlkit.teach.course.setup(full=False)
    said = capsys.readouterr().out
    assert course.environment == "colab" and not course.full
    if gpu:
        assert "A GPU is available: set FULL = True" in said
    else:
        assert "This Colab runtime has no GPU: the lesson keeps to the offline default" in said
