"""The untrusted half of grading: run a submission's cells, then the probes; write arrays.

Started by ``tlkit.grading.trusted`` as ``python -m tlkit.grading._runner JOB.json`` in a fresh
process. Whatever the student's code does here (patch torch, silence errors, exit) it can only
spoil its own arrays: the verdict is computed by the parent from the seed.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys

import numpy as np


def main(job_path: str) -> None:
    with open(job_path) as f:
        job = json.load(f)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from IPython.core.interactiveshell import InteractiveShell

    from . import explain, get_check

    shell = InteractiveShell.instance()  # magics and get_ipython() work as in a notebook
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        for source in job["cells"]:
            shell.run_cell(source, store_history=False)
    namespace = shell.user_ns
    arrays: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    probed_by: dict[object, dict] = {}  # checks that share a probe (ex04's training) run it once
    for check_id in job["checks"]:
        spec = get_check(check_id)
        missing = [name for name in spec.needs if name not in namespace]
        if missing:
            errors[check_id] = f"`{missing[0]}` is not defined: the cell that defines it is missing."
            continue
        try:
            if spec.probe not in probed_by:
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    probed_by[spec.probe] = spec.probe(namespace, job["seed"])
            probed = probed_by[spec.probe]
            for key, value in probed.items():
                arrays[f"{check_id}/{key}"] = np.asarray(value)
        except BaseException as error:  # noqa: BLE001 — SystemExit from student code too
            errors[check_id] = explain(error)
    np.savez(job["out"], __errors__=np.array(json.dumps(errors)), **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
