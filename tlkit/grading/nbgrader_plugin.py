"""nbgrader preprocessors that make a plain ``nbgrader autograde`` safe against cheating.

``nbgrader_config.py`` at the project root puts them in the autograde pipeline:

- ``SafeExecute``: nbgrader's Execute, except that a kernel killed by the notebook itself
  (``os._exit``, ``exit()``) ends the execution instead of failing the whole submission, so it
  is graded and recorded like any other and a batch of students goes on.
- ``TrustedChecks`` (before Execute) starts ``tlkit.grading.trusted``: the checks re-run on the
  submission in a separate process, in parallel with the kernel, with a seed drawn now and
  verified in this one. ``ApplyTrustedChecks`` (after Execute) gives every autograded test
  cell its outputs from them. What the kernel printed in those cells (possibly after student
  code silenced its errors) does not count.

This module imports nbgrader: only nbgrader loads it, never ``import tlkit``.
"""
from __future__ import annotations

import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

import torch
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Float, Integer

from .trusted import grade_cells

CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([\w.]+)["']""")


class SafeExecute(Execute):
    """Execute, surviving a kernel that the notebook kills; one thread per process.

    The kernel and the trusted checks run side by side on the grading machine: with PyTorch's
    default of one thread per core each, they wait on each other's busy threads (measured on 2
    cores: 26 s per notebook, against 12 s with one thread each).
    """

    def preprocess(self, nb, resources, km=None):
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # the kernel copies the environment when it starts
        try:
            return super().preprocess(nb, resources, km=km)
        except Exception as error:  # DeadKernelError, and whatever a dying kernel raises
            self.log.warning("The kernel stopped during execution (%s); grading what ran.",
                             type(error).__name__)
            return nb, resources
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved


class TrustedChecks(NbGraderPreprocessor):
    """Start the checks in a separate process before the kernel runs (in parallel with it).

    ``ApplyTrustedChecks``, later in the pipeline, waits for them and sets the test cells' outputs.
    """

    timeout = Float(120, help="Seconds the submission's cells and probes may take.").tag(config=True)
    seed = Integer(None, allow_none=True,
                   help="Grading seed; default: TLKIT_GRADING_SEED, else drawn now.").tag(config=True)

    def preprocess(self, nb, resources):
        seed = self.seed
        if seed is None:
            env = os.environ.get("TLKIT_GRADING_SEED")
            seed = int(env) if env else secrets.randbelow(2**31)
        tests = _test_cells(nb)
        cells = [cell.source for i, cell in enumerate(nb.cells)
                 if cell.cell_type == "code" and i not in tests]
        every = list(dict.fromkeys(i for found in tests.values() for i in found))
        cwd = resources.get("metadata", {}).get("path") or None
        # The verification in this process also runs beside the kernel: one thread (see SafeExecute).
        torch.set_num_threads(1)
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(grade_cells, cells, every, seed=seed, timeout=self.timeout, cwd=cwd)
        pool.shutdown(wait=False)
        resources["tlkit_trusted"] = (future, seed, tests)
        return nb, resources


class ApplyTrustedChecks(NbGraderPreprocessor):
    """Set each autograded test cell's outputs from the checks verified outside the kernel."""

    def preprocess(self, nb, resources):
        future, seed, tests = resources.pop("tlkit_trusted")
        results = future.result()
        self.log.info("Trusted checks with seed %d: %d of %d passed", seed,
                      sum(ok for ok, _ in results.values()), len(results))
        header = (f"Graded in a separate process with seed {seed} "
                  f"(reproduce: TLKIT_GRADING_SEED={seed} nbgrader autograde …)")
        for index, found in tests.items():
            cell = nb.cells[index]
            lines = [f"{'✔' if results[i][0] else '✘'} {i}: {results[i][1]}" for i in found]
            if found and all(results[i][0] for i in found):
                cell.outputs = [NotebookNode(output_type="stream", name="stdout",
                                             text="\n".join([header, *lines]) + "\n")]
            else:
                reason = "\n".join(lines) or "this test cell calls no check()"
                cell.outputs = [NotebookNode(output_type="error", ename="CheckFailed",
                                             evalue=reason, traceback=[header, *lines])]
        return nb, resources


def _test_cells(nb) -> dict[int, list[str]]:
    """Index of every autograded test cell -> the check ids it calls."""
    return {i: CHECK_CALL.findall(cell.source) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)}
