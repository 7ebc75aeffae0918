"""The trusted half of grading: run the probes in a subprocess, verify here.

``grade_cells`` is what the nbgrader plugin calls for each submitted notebook; it needs no
nbgrader itself. Student code never runs in this process, so nothing it patches can reach the
comparisons; a subprocess that hangs is killed, one that exits early gives no arrays — both fail.

Example::

    results = grade_cells(["def sgd_step(params, *, lr): ..."], ["ex01.sgd_step"], seed=7)
    results["ex01.sgd_step"]   # (False, "sgd_step: the parameters did not change.")
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import CheckFailed, get_check

__all__ = ["grade_cells"]

MAX_RESULT_BYTES = 256 * 2**20  # a result file larger than this is refused, not loaded


def grade_cells(cells: list[str], check_ids: list[str], *, seed: int, timeout: float = 120,
                cwd: str | Path | None = None) -> dict[str, tuple[bool, str]]:
    """Run ``cells`` then the probes in a fresh process; verify each check here.

    Returns ``{check_id: (passed, message)}``.
    """
    for check_id in check_ids:
        get_check(check_id)  # an unknown id is the author's mistake: fail loudly, now
    with tempfile.TemporaryDirectory(prefix="tlkit-grading-") as tmp:
        job, out = Path(tmp, "job.json"), Path(tmp, "result.npz")
        job.write_text(json.dumps({"cells": cells, "checks": check_ids, "seed": seed,
                                   "out": str(out)}))
        failure = _run(job, timeout=timeout, cwd=cwd)
        arrays: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        if failure is None:
            if not out.exists():
                failure = ("the notebook stopped the grading process before the checks ran "
                           "(an exit() or a crash in one of its cells)")
            elif out.stat().st_size > MAX_RESULT_BYTES:
                failure = "the results were too large to be read"
            else:
                with np.load(out, allow_pickle=False) as data:
                    arrays = {key: data[key] for key in data.files}
                errors = json.loads(str(arrays.pop("__errors__", np.array("{}"))))
    results = {}
    for check_id in check_ids:
        if failure is not None or check_id in errors:
            results[check_id] = (False, failure or errors[check_id])
            continue
        prefix = check_id + "/"
        own = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        try:
            results[check_id] = (True, get_check(check_id).verify(own, seed))
        except CheckFailed as error:
            results[check_id] = (False, str(error))
        except Exception as error:  # missing or malformed arrays: the probe was tampered with
            results[check_id] = (False, f"the results could not be checked ({error!r})")
    return results


def _run(job: Path, *, timeout: float, cwd: str | Path | None) -> str | None:
    # One thread: it runs beside the notebook's kernel, and tiny models gain nothing from more.
    env = dict(os.environ, NBGRADER_EXECUTION="autograde", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "tlkit.grading._runner", str(job)],
                               cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # its own group: kill its children too
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return f"the notebook did not finish within {timeout:.0f} s (an endless loop?)"
    return None
