"""nbgrader preprocessors: sandboxed, trusted grading inside a plain ``nbgrader autograde``.

``nbgrader_config.py`` puts them in nbgrader's pipelines:

- ``SandboxedExecute`` replaces nbgrader's Execute in autograde: the notebook runs in the
  sandbox (``tlgrade.sandbox``) with the probes after it, and this process verifies.
- ``ApplyTrustedChecks`` then gives every autograded test cell its outputs from those verdicts:
  one line per check, partial credit when some of a cell's checks pass (a visible and a hidden
  check are scored apart), nothing the kernel printed.
- ``EmbedCourseCode`` in generate_assignment writes the course code into each release, so
  students' notebooks derive their variants (only when a course secret is configured).

Example (nbgrader_config.py)::

    c.CourseSecret.path = "~/.tlgrade/secret"
    c.Autograde.autograde_preprocessors = [SandboxedExecute, ..., ApplyTrustedChecks, SaveAutoGrades, ...]
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import Configurable

from .grade import grade_notebook, test_cells
from .sandbox import Limits, Sandbox
from .secret import course_code, load_secret

__all__ = ["CourseSecret", "SandboxedExecute", "ApplyTrustedChecks", "EmbedCourseCode"]

COURSE_LINE = re.compile(r"^COURSE = None\b.*$", re.MULTILINE)


class CourseSecret(Configurable):
    path = Unicode("", help="File holding the course secret ('' : no variants, hidden seeds "
                            "drawn at grading time).").tag(config=True)


class SandboxedExecute(NbGraderPreprocessor):
    """Run the submission in the sandbox, then its checks; verify outside."""

    timeout = Integer(60, help="Seconds each cell may run; then it is interrupted.").tag(config=True)
    probe_timeout = Integer(300, help="Seconds the checks may take after the notebook.").tag(config=True)
    total_timeout = Integer(0, help="Seconds for the whole notebook (0: cells × timeout + "
                                    "probe_timeout).").tag(config=True)
    memory_mb = Integer(6144, help="Address space per process in the sandbox.").tag(config=True)
    cpu_seconds = Integer(900, help="CPU seconds per process in the sandbox.").tag(config=True)
    processes = Integer(512, help="Processes and threads of the sandbox's user.").tag(config=True)
    threads = Integer(0, help="Threads for the submission's kernel (0: every core; the grader "
                              "waits while it runs). Grading batches side by side: cores / "
                              "batches.").tag(config=True)
    hide = List(Unicode(), help="More folders or files the sandbox must not show (the course "
                                "folder, the exchange and the secret are hidden anyway).").tag(config=True)
    allow_unsafe = Bool(False, help="Grade without bubblewrap when it is missing: student "
                                    "code then runs as you.").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        course = CourseDirectory(config=self.config)
        secret_path = CourseSecret(config=self.config).path
        threads = self.threads or len(os.sched_getaffinity(0))
        sandbox = Sandbox(hide=self._hidden(course), unsafe=self.allow_unsafe,
                          limits=Limits(memory_bytes=self.memory_mb * 2**20,
                                        cpu_seconds=self.cpu_seconds * threads,  # CPU of all threads
                                        processes=self.processes))
        if not sandbox.available():
            self.log.warning("bubblewrap is missing: grading %s without a sandbox (allow_unsafe)",
                             info["student"])
        graded = grade_notebook(nb, assignment=info["assignment"], student=info["student"],
                                secret=load_secret(secret_path), course_id=course.course_id,
                                sandbox=sandbox, cell_timeout=self.timeout,
                                probe_timeout=self.probe_timeout,
                                total_timeout=self.total_timeout or None, threads=threads)
        executed = graded.executed
        same = executed is not None and len(executed.cells) == len(nb.cells)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                ran = executed.cells[i] if same else None
                cell.outputs = ran.get("outputs", []) if ran is not None else []
                cell.execution_count = ran.get("execution_count") if ran is not None else None
        if graded.failure:
            self.log.warning("%s: %s\n%s", info["student"], graded.failure, graded.log)
        resources["tlgrade"] = graded
        return nb, resources


    def _hidden(self, course: CourseDirectory) -> list[Path]:
        """What the sandbox must not see: the course folder, the gradebook, the exchange (every
        student's submissions), the secret, the grader, and the repository tlkit and the grader
        came from (its solutions/, grader/ and .git history); tlkit itself is shown again."""
        import tlgrade
        import tlkit
        from nbgrader.exchange.default.exchange import Exchange

        hide = [Path(course.root), Path(course.root, course.source_directory),
                Path(tlgrade.__file__).resolve().parent, Path(Exchange(config=self.config).root)]
        for package in (tlgrade, tlkit):  # an editable install: the clone it lives in
            for folder in Path(package.__file__).resolve().parents:
                if (folder / ".git").exists() or (folder / "pyproject.toml").exists() and \
                        (folder / "solutions").exists():
                    hide.append(folder)
                    break
        if course.db_url.startswith("sqlite:///"):
            hide.append(Path(course.db_url[len("sqlite:///"):]))
        secret_path = CourseSecret(config=self.config).path
        if secret_path:
            hide.append(Path(secret_path).expanduser())
        return hide + [Path(p).expanduser() for p in self.hide]


class ApplyTrustedChecks(NbGraderPreprocessor):
    """Set each autograded test cell's outputs from the checks verified outside the sandbox."""

    def preprocess(self, nb, resources):
        graded = resources.pop("tlgrade")
        self.log.info("%s: %d of %d checks passed", graded.variant,
                      sum(ok for ok, _ in graded.results.values()), len(graded.results))
        for index, calls in test_cells(nb).items():
            cell = nb.cells[index]
            lines = [self._line(graded, task) for task in calls]
            passed = sum(graded.results[task][0] for task in calls)
            header = f"Graded outside the notebook, in a sandbox ({graded.variant})"
            text = "\n".join([header, *lines]) + "\n"
            if calls and passed == len(calls):
                cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)]
            elif passed == 0:
                reason = "\n".join(lines) or "this test cell calls no check()"
                cell.outputs = [NotebookNode(output_type="error", ename="CheckFailed",
                                             evalue=reason, traceback=[header, *lines])]
            else:  # nbgrader reads a number as the points this cell earned
                points = float(cell.metadata["nbgrader"]["points"]) * passed / len(calls)
                cell.outputs = [
                    NotebookNode(output_type="stream", name="stdout", text=text),
                    NotebookNode(output_type="execute_result", execution_count=None,
                                 metadata={}, data={"text/plain": f"{points:g}"})]
        return nb, resources

    @staticmethod
    def _line(graded, task) -> str:
        ok, message = graded.results[task]
        kind = "hidden" if task[1] else "visible"
        # A seed drawn at grading time is shown, to reproduce a run; one from the course secret
        # is not: it is the same at every grading, so it would give the hidden inputs away.
        seed = f", seed {graded.seeds[task]}" if task[1] and not graded.secret else ""
        return f"{'✔' if ok else '✘'} {task[0]} ({kind}{seed}): {message}"


class EmbedCourseCode(NbGraderPreprocessor):
    """generate_assignment: ``COURSE = None`` becomes this course's code, given a secret."""

    def preprocess(self, nb, resources):
        secret = load_secret(CourseSecret(config=self.config).path)
        if secret is None:
            return nb, resources
        code = course_code(secret, CourseDirectory(config=self.config).course_id)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = COURSE_LINE.sub(
                    f'COURSE = "{code}"  # this course\'s code: your variant comes from it',
                    cell.source)
        return nb, resources
