"""Is tlkit built in floors, and does `import tlkit` stay light?

The floors: core (device, seeds, checks) < data < models < learn < teach. A module may import
from its own floor and those below, never from above: the training loop must not depend on
the lesson set-up, the data sets must not depend on the models.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tlkit

PACKAGE = Path(tlkit.__file__).parent
FLOORS = {"core": 0, "data": 1, "models": 2, "learn": 3, "teach": 4}


def _floor(parts: list[str]) -> int | None:
    """The floor of a module given its dotted path inside tlkit (None: the package root)."""
    return FLOORS.get(parts[0]) if parts else None


def _imports(path: Path, here: list[str]) -> list[tuple[list[str], int]]:
    """Every tlkit module that the module at ``here`` (its parts inside tlkit, e.g.
    ``["learn", "train"]``) imports, as parts inside tlkit, with the line."""
    package = here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "tlkit":
                target = node.module.split(".")[1:]
            else:
                continue
            found.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tlkit":
                    # `import tlkit` reaches the whole public API, up to teach.
                    target = alias.name.split(".")[1:] or ["teach"]
                    found.append((target, node.lineno))
    return found


def test_no_module_imports_from_a_floor_above_it():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).parts)
        floor = _floor(parts[:-1]) if len(parts) > 1 else None
        if floor is None:
            continue  # tlkit/__init__.py and __main__.py sit above every floor
        for target, line in _imports(path, [*parts[:-1], path.stem]):
            target_floor = _floor(target)
            if target_floor is not None and target_floor > floor:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports tlkit.{'.'.join(target)}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_resolves_relative_imports_and_sees_an_upward_one(tmp_path):
    # The test above must be able to fail: here, a learn module importing the lesson set-up.
    train = _imports(PACKAGE / "learn" / "train.py", ["learn", "train"])
    assert any(t == ["core", "seed"] for t, _ in train)
    bad = tmp_path / "bad.py"
    bad.write_text("from ..teach.course import setup\nfrom . import inputs\nimport tlkit\n")
    assert _imports(bad, ["learn", "bad"]) == [(["teach", "course"], 1), (["learn"], 2),
                                               (["teach"], 3)]


def test_every_public_name_resolves_and_is_listed():
    for name in tlkit.__all__:
        assert getattr(tlkit, name) is not None, name
    assert set(tlkit.__all__) <= set(dir(tlkit))
    assert {"core", "data", "models", "learn", "teach"} <= set(dir(tlkit))
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        tlkit.fitt  # noqa: B018


HEAVY = ["torchvision", "timm", "matplotlib", "sklearn", "skimage", "ipywidgets"]


def _modules_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd="/")
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_tlkit_loads_none_of_the_heavy_libraries():
    loaded = _modules_after("import tlkit")
    assert not [m for m in HEAVY + ["torch"] if m in loaded]


def test_a_lessons_first_cell_loads_torch_but_nothing_heavier():
    loaded = _modules_after("import tlkit; tlkit.setup(quiet=True)")
    assert "torch" in loaded
    assert not [m for m in HEAVY if m in loaded]


def test_the_training_loop_needs_neither_torchvision_nor_plots():
    loaded = _modules_after("import tlkit; tlkit.fit; tlkit.sgd_step; tlkit.evaluate")
    assert not [m for m in ("torchvision", "timm", "matplotlib", "sklearn", "skimage",
                            "ipywidgets") if m in loaded]
