"""The promises the repository makes to a student, an instructor and CI."""
from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import tlkit

ROOT = Path(__file__).parents[1]


def test_readme_shows_the_two_setup_commands_and_how_to_open_the_course():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", readme, flags=re.S)
    commands = [l.strip() for b in blocks for l in b.splitlines() if l.strip().startswith("make ")]
    assert commands[:2] == ["make demo", "make test"]
    assert "jupyter lab course/" in readme


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", script, flags=re.M)
    assert "set -e" in script


def test_dependencies_keep_torch_unpinned_and_nbgrader_optional():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    assert not any(d.startswith("nbgrader") for d in core)
    for pkg in ("torch", "torchvision"):
        spec = next(d for d in core if re.match(rf"{pkg}\b", d) and not d.startswith(pkg + "-"))
        assert "==" not in spec and "<" not in spec, spec
    extras = project["optional-dependencies"]
    assert {"course", "test", "dev"} <= set(extras)
    # Grading is the instructor's own package, never a dependency or extra of tlkit.
    assert not any(d.startswith(("nbgrader", "tlgrade")) for ds in extras.values() for d in ds)
    grader = tomllib.loads((ROOT / "grader" / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("nbgrader") for d in grader["dependencies"])
    constraints = (ROOT / "constraints.txt").read_text()
    assert "torch==2.14.1" in constraints and "torchvision==0.29.1" in constraints


def test_the_public_api_is_exported_and_documented():
    for name in tlkit.__all__:
        obj = getattr(tlkit, name)
        assert obj.__doc__, f"tlkit.{name} has no docstring"
        if inspect.isfunction(obj):
            params = inspect.signature(obj).parameters.values()
            assert all(p.annotation is not inspect.Parameter.empty for p in params
                       if p.kind is not p.VAR_KEYWORD and p.name != "self"), name


def test_modules_stay_readable_in_one_sitting():
    for path in (ROOT / "tlkit").rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, f"{path} is over 300 lines"
