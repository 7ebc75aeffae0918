"""Grade one submitted notebook: run it in the sandbox with the probes, verify here.

Nothing of the verdict is decided where the student's code runs. This process draws every
check's inputs (from the course secret and the student's id), sends the sandbox only those
inputs, reads back plain arrays, and compares them with references it computes itself.

Example::

    graded = grade_notebook(nb, assignment="ex01_sgd_update", student="alice",
                            secret=None, course_id="transfer-learning", sandbox=Sandbox())
    graded.results[("ex01.sgd_step", False)]   # (True, "2 parameters match …")
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
from nbgrader import utils
from tlkit.teach.variant import Variant, variant

from .checks import CheckFailed, Context, calls_in, get_check
from .sandbox import Sandbox
from .secret import course_code, draw_seed, hidden_seed

__all__ = ["Graded", "grade_notebook", "test_cells"]

INSIDE = Path(__file__).with_name("inside")
MAX_RESULT_BYTES = 512 * 2**20  # larger results are refused, not loaded
Task = tuple[str, bool]  # (check id, hidden)


@dataclass
class Graded:
    variant: Variant
    results: dict[Task, tuple[bool, str]] = field(default_factory=dict)
    seeds: dict[Task, int] = field(default_factory=dict)
    executed: nbformat.NotebookNode | None = None
    failure: str | None = None  # why the sandbox stopped, if it did
    log: str = ""  # the end of what the sandbox wrote to its standard error
    secret: bool = False  # were the hidden seeds derived from a course secret?


def test_cells(nb) -> dict[int, list[Task]]:
    """Index of every autograded test cell -> the checks it calls."""
    return {i: calls_in(cell.source) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)}


def grade_notebook(nb, *, assignment: str, student: str, secret: bytes | None, course_id: str,
                   sandbox: Sandbox, cell_timeout: int = 60, probe_timeout: int = 300,
                   total_timeout: int | None = None, threads: int = 1) -> Graded:
    """Run ``nb`` in ``sandbox`` and verify every check its test cells call."""
    code = course_code(secret, course_id) if secret else None
    graded = Graded(variant(assignment, course=code, student=student if code else None),
                    secret=secret is not None)
    tasks = list(dict.fromkeys(t for calls in test_cells(nb).values() for t in calls))
    drawn = draw_seed()
    for check_id, hidden in tasks:
        get_check(check_id)  # an unknown id is the author's mistake: fail loudly, now
        graded.seeds[(check_id, hidden)] = hidden_seed(
            secret, assignment=assignment, student=student, check_id=check_id,
            drawn=drawn) if hidden else 0
    with tempfile.TemporaryDirectory(prefix="tlgrade-") as tmp:
        os.chmod(tmp, 0o711)  # the sandbox may run as nobody: it must reach what it binds
        work, inside, masks = Path(tmp, "work"), Path(tmp, "inside"), Path(tmp, "masks")
        for folder in (work / "inputs", work / "out", masks):
            folder.mkdir(parents=True)
        shutil.copytree(INSIDE, inside, ignore=shutil.ignore_patterns("__pycache__"))
        boxed = sandbox.available()
        at = Path("/tmp/submission") if boxed else work  # where `work` is, seen from inside
        blank = nbformat.from_dict(json.loads(nbformat.writes(nb)))
        for cell in blank.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(blank, work / "submission.ipynb")
        inputs: dict[Task, dict] = {}
        job_tasks = []
        for number, task in enumerate(tasks):
            spec, seed = get_check(task[0]), graded.seeds[task]
            inputs[task] = spec.inputs(Context(seed, graded.variant, task[1]))
            np.savez(work / "inputs" / f"{number}.npz", **inputs[task])
            job_tasks.append({"key": str(number), "probe": spec.probe, "needs": list(spec.needs),
                              "share": f"{spec.probe}:{id(spec.inputs)}:{seed}",
                              "inputs": str(at / "inputs" / f"{number}.npz")})
        sandbox.masks = _write_masks(tasks, masks)
        job = {"notebook": str(at / "submission.ipynb"), "assignment": assignment,
               "cell_timeout": cell_timeout, "probe_timeout": probe_timeout,
               "tasks": job_tasks, "result": str(at / "out" / "result.npz"),
               "executed": str(at / "out" / "executed.ipynb")}
        (work / "job.json").write_text(json.dumps(job))
        cells = sum(c.cell_type == "code" for c in nb.cells)
        limit = total_timeout or cell_timeout * (cells + 1) + probe_timeout
        home = "/tmp/home" if boxed else str(work / "home")
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
               "HOME": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "PYTHONNOUSERSITE": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "NBGRADER_EXECUTION": "autograde",
               "TLKIT_STUDENT": student, "TLKIT_CACHE": f"{home}/.cache/tlkit",
               "TLKIT_DATA": f"{home}/data", **{k: str(threads) for k in (
                   "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
        if not boxed and os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # the test suite's network guard
        graded.failure = sandbox.run(
            [sys.executable, "-I", str((Path("/tmp/grader") if boxed else inside) / "runner.py"),
             str(at / "job.json")], work=work, inside=inside, env=env, timeout=limit,
            log=Path(tmp, "sandbox.log"))
        graded.log = _tail(Path(tmp, "sandbox.log"))
        graded.executed = _read_notebook(work / "out" / "executed.ipynb")
        outputs, errors = _read_results(work / "out" / "result.npz", graded)
    for number, task in enumerate(tasks):
        graded.results[task] = _verify(task, inputs[task], str(number), outputs, errors, graded)
    return graded


def _verify(task: Task, inputs: dict, key: str, outputs: dict, errors: dict,
            graded: Graded) -> tuple[bool, str]:
    if key in errors:
        return False, errors[key]
    own = {name.split("//", 1)[1]: value for name, value in outputs.items()
           if name.startswith(key + "//")}
    if not own:
        return False, graded.failure or ("the notebook stopped before the checks ran (an exit, a "
                                         "crash or a killed kernel in one of its cells)")
    ctx = Context(graded.seeds[task], graded.variant, task[1])
    try:
        return True, get_check(task[0]).verify(inputs, own, ctx)
    except CheckFailed as error:
        return False, str(error)
    except Exception as error:  # missing or malformed arrays: the probe was tampered with
        return False, f"the results could not be checked ({type(error).__name__}: {error})"


def _tail(path: Path, size: int = 4000) -> str:
    """The end of a log the sandbox wrote (it may have written much)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - size))
        return f.read().decode(errors="replace")


def _write_masks(tasks: list[Task], folder: Path) -> dict[str, Path]:
    shown = {}
    for check_id in dict.fromkeys(t[0] for t in tasks):
        for real, content in get_check(check_id).masks().items():
            path = folder / f"{len(shown)}.mask"
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                with open(path, "wb") as f:  # np.save to a name would append ".npy"
                    np.save(f, content)
            shown[real] = path
    return shown


def _own_file(path: Path) -> io.BytesIO | None:
    """The bytes of ``path`` if it is a regular file of the sandbox's own: no symlink (in any
    part of the path), not too large. The sandbox could plant a link to any file this
    process may read."""
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
        finally:
            os.close(folder)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RESULT_BYTES or \
                os.path.realpath(path.parent) != str(path.parent.resolve()):
            return None
        return io.BytesIO(f.read())


def _read_notebook(path: Path):
    data = _own_file(path)
    if data is None:
        return None
    try:
        return nbformat.read(io.TextIOWrapper(data, encoding="utf-8"), as_version=4)
    except Exception:  # a notebook the submission garbled: its outputs are lost, not the grade
        return None


def _read_results(path: Path, graded: Graded) -> tuple[dict, dict]:
    if not path.exists() and not path.is_symlink():
        return {}, {}
    data = _own_file(path)
    if data is None:
        graded.failure = "the results were not a plain file of a readable size"
        return {}, {}
    try:
        with zipfile.ZipFile(data) as archive:  # np.savez writes a zip: count it unpacked
            if sum(member.file_size for member in archive.infolist()) > MAX_RESULT_BYTES:
                raise ValueError("too large unpacked")
        data.seek(0)
        with np.load(data, allow_pickle=False) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
        errors = json.loads(str(arrays.pop("__errors__")))
        return arrays, {str(k): str(v) for k, v in dict(errors).items()}
    except Exception as error:  # a results file the submission forged or broke
        graded.failure = f"the results could not be read ({type(error).__name__})"
        return {}, {}
