"""Autograde a class in parallel: shards of students, one nbgrader process each, merged back.

``nbgrader autograde`` grades one submission after another (nbgrader #174). Here the students
are dealt round-robin into ``workers`` shards. Each shard is a small course folder of its own
(a copy of the gradebook, its students' submissions, the course's configuration) graded by one
process that runs nbgrader's own autograde student by student, so every submission is graded
exactly as the serial run grades it. When the shards are done, their grades, comments, late
penalties and autograded notebooks are merged into the course's gradebook and ``autograded/``.
A student nbgrader itself could not grade is reported with nbgrader's error, as serially.

A worker that dies (killed, out of memory) loses nothing: the students it had not finished are
graded again in a fresh process, and anyone still not graded is listed, never dropped silently.

Example::

    report = autograde(course=Path("~/course").expanduser(), assignment="ex01_sgd_update",
                       workers=2)
    report.graded, report.failed          # ['alice', 'bob', ...], {}

or ``python -m tlgrade autograde ex01_sgd_update --workers 2`` in the course folder.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Report", "autograde"]

# The worker: nbgrader's own autograde, one student at a time through its API (as `nbgrader
# autograde --student=…` does), and a mark per student once that student's grades and notebook
# are saved. Less 2 s of start-up: jsonschema (under nbformat) builds an IRI parser from
# rfc3987_syntax at import, for a format nbgrader never checks.
WORKER = ("import sys; sys.modules.setdefault('rfc3987_syntax', None); "
          "from tlgrade.parallel import work; work(sys.argv[1:])")


@dataclass
class Report:
    graded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # student -> why not graded
    retried: list[str] = field(default_factory=list)  # graded again after a worker died
    seconds: float = 0.0


def autograde(*, course: Path, assignment: str, workers: int = 0,
              students: list[str] | None = None, force: bool = False, retries: int = 1,
              log=print) -> Report:
    """Grade ``assignment``'s submissions in ``course`` with ``workers`` processes (0: one per
    core). As ``nbgrader autograde``: without ``force``, a submission already graded and not
    changed since is left as it is. Returns who was graded and who was not (and why)."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    start = time.perf_counter()
    course = Path(course).resolve()
    config_file = course / "nbgrader_config.py"
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} is missing: run this in the course folder "
                                "(the one with nbgrader_config.py), or pass course=")
    config = PyFileConfigLoader(config_file.name, path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    coursedir = CourseDirectory(config=config)
    if not coursedir.db_url.startswith("sqlite:///"):
        raise ValueError(f"parallel autograding copies the gradebook, which needs SQLite; "
                         f"{coursedir.db_url!r} is not: grade with `nbgrader autograde` instead")
    database = Path(coursedir.db_url[len("sqlite:///"):])
    submitted = course / coursedir.submitted_directory
    found = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())
    todo = found if students is None else [s for s in students if s in found]
    if not force:
        skipped = [s for s in todo if _up_to_date(course, coursedir, assignment, s)]
        if skipped:
            log(f"already graded and unchanged since (--force grades them again): "
                f"{', '.join(skipped)}")
        todo = [s for s in todo if s not in skipped]
    report = Report(failed={s: "no submission in submitted/" for s in (students or [])
                            if s not in found})
    workers = max(1, min(workers or len(os.sched_getaffinity(0)), len(todo) or 1))
    work = course / ".tlgrade-parallel" / assignment
    shutil.rmtree(work, ignore_errors=True)
    suspects: list[str] = []
    for attempt in range(1 + retries):
        if not todo:
            break
        if attempt == 0:
            shards = [todo[i::workers] for i in range(workers)]
        else:  # whoever was being graded when a worker died goes alone: it may be the cause
            rest = [s for s in todo if s not in suspects]
            shards = [[s] for s in todo if s in suspects] + ([rest] if rest else [])
        done, failed, suspects = _run_shards(
            shards, course=course, assignment=assignment, database=database,
            coursedir=coursedir, work=work / f"round{attempt}", log=log,
            threads=max(1, len(os.sched_getaffinity(0)) // len(shards)))
        report.graded += done
        report.failed.update(failed)
        if attempt:
            report.retried += done
        todo = [s for s in todo if s not in done and s not in failed]
        if todo and attempt < retries:
            log(f"not graded yet, grading again in a fresh process: {', '.join(todo)}")
    report.failed.update({s: f"its worker stopped while grading it, {1 + retries} times: see "
                          f"{work}/round*/shard*/autograde.log; grade it alone with `nbgrader "
                          f"autograde {assignment} --student={s}` (more memory: "
                          f"c.SandboxedExecute.memory_mb)" for s in todo})
    if not todo:  # every grade is in the course: the shards are no longer needed
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()
        except OSError:  # another assignment is being graded beside this one
            pass
    report.graded.sort()
    report.seconds = time.perf_counter() - start
    return report


def _run_shards(shards: list[list[str]], *, course: Path, assignment: str, database: Path,
                coursedir, work: Path, threads: int, log) -> tuple[list[str], dict[str, str], list[str]]:
    """Grade each shard in its own process and merge what each finished. Returns who was
    graded, who nbgrader could not grade (with its error), and who was being graded when a
    worker died."""
    processes = []
    for number, students in enumerate(shards):
        shard = work / f"shard{number}"
        _make_shard(shard, students, course=course, assignment=assignment, database=database,
                    coursedir=coursedir, threads=threads)
        out = open(shard / "autograde.log", "wb")
        command = [sys.executable, "-c", WORKER, assignment, *students]
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        processes.append((shard, students, out, subprocess.Popen(
            command, cwd=shard, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)))
    graded, failed, suspects, start = [], {}, [], time.perf_counter()
    for shard, students, out, process in processes:
        code = process.wait()
        out.close()
        done = [s for s in students if (shard / "done" / s).exists()]
        for student in students:
            if (shard / "failed" / student).exists():  # nbgrader's verdict: as serial, final
                failed[student] = (shard / "failed" / student).read_text()[-2000:]
        log(f"worker {shard.name}: {len(done)} of {len(students)} graded after "
            f"{time.perf_counter() - start:.0f} s" + (f", then it ended with {code}" if code else ""))
        if code:
            suspects += [s for s in students if (shard / "started" / s).exists()
                         and s not in done and s not in failed]
        _merge(shard, course, assignment, done, coursedir=coursedir, database=database)
        graded += done
    return graded, failed, suspects


def work(argv: list[str]) -> None:
    """A worker, in its shard's folder: ``ASSIGNMENT STUDENT...``."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    assignment, *students = argv
    config = PyFileConfigLoader("nbgrader_config.py", path=os.getcwd()).load_config()
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for folder in ("started", "done", "failed"):
        os.makedirs(folder, exist_ok=True)
    for student in students:
        Path("started", student).touch()  # if this worker dies now, this student is why
        result = api.autograde(assignment, student)  # force=True: the shard starts empty
        print(result.get("log", ""), flush=True)
        # Written only now that nbgrader has saved this student's grades and notebook.
        Path("done" if result["success"] else "failed", student).write_text(
            result.get("error") or result.get("log", ""))


def _up_to_date(course: Path, coursedir, assignment: str, student: str) -> bool:
    """nbgrader's rule for skipping without --force: every notebook graded, and the submission
    not newer than its grading."""
    source = course / coursedir.submitted_directory / student / assignment
    graded = course / coursedir.autograded_directory / student / assignment
    if not graded.is_dir() or any(not (graded / nb.name).exists() for nb in source.glob("*.ipynb")):
        return False
    new, old = (coursedir.get_existing_timestamp(str(p)) for p in (source, graded))
    return not (new is not None and old is not None and new > old)


def _make_shard(shard: Path, students: list[str], *, course: Path, assignment: str,
                database: Path, coursedir, threads: int) -> None:
    shard.mkdir(parents=True)
    with sqlite3.connect(database) as src, sqlite3.connect(shard / "gradebook.db") as dst:
        src.backup(dst)  # a consistent copy, even of a database someone has open
    for student in students:
        shutil.copytree(course / coursedir.submitted_directory / student / assignment,
                        shard / "submitted" / student / assignment, symlinks=True)
    source = shard / coursedir.source_directory
    source.parent.mkdir(parents=True, exist_ok=True)
    source.symlink_to(course / coursedir.source_directory)
    # The course's own configuration, then only what makes this folder a shard of it.
    (shard / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(course / 'nbgrader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(shard)!r}\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(shard / 'gradebook.db')!r}\n"
        "c.CourseDirectory.submitted_directory = 'submitted'\n"
        "c.CourseDirectory.autograded_directory = 'autograded'\n"
        f"c.SandboxedExecute.threads = {threads}\n"
        f"c.SandboxedExecute.hide.append({str(course)!r})  # the whole course, not only this shard\n")


def _merge(shard: Path, course: Path, assignment: str, students: list[str], *, coursedir,
           database: Path) -> None:
    """Copy into the course what autograding set for these students — auto scores and
    comments, late penalties, the submission time — and nothing else: a manual grade someone
    gave in the formgrader meanwhile stays. ``needs_manual_grade`` by nbgrader's own rule."""
    from nbgrader.api import Gradebook, MissingEntry

    course_id = coursedir.course_id
    with Gradebook(f"sqlite:///{shard / 'gradebook.db'}", course_id) as src, \
            Gradebook(f"sqlite:///{database}", course_id) as dst:
        for student in students:
            theirs = src.find_submission(assignment, student)
            try:
                dst.find_student(student)
            except MissingEntry:  # autograde enrolled them (create_student)
                person = theirs.student
                dst.add_student(student, first_name=person.first_name,
                                last_name=person.last_name, email=person.email,
                                lms_user_id=person.lms_user_id)
            times = {"timestamp": theirs.timestamp} if theirs.timestamp is not None else {}
            dst.update_or_create_submission(assignment, student, **times)
            for notebook in theirs.notebooks:
                target = dst.find_submission_notebook(notebook.name, assignment, student)
                target.late_submission_penalty = notebook.late_submission_penalty
                for grade in notebook.grades:
                    mine = dst.find_grade(grade.name, notebook.name, assignment, student)
                    mine.auto_score = grade.auto_score
                    # SaveAutoGrades' rule, on the course's manual score (it may be newer)
                    mine.needs_manual_grade = mine.manual_score is not None or mine.auto_score is None
                for comment in notebook.comments:
                    dst.find_comment(comment.name, notebook.name, assignment,
                                     student).auto_comment = comment.auto_comment
            dst.db.commit()
            target_folder = course / coursedir.autograded_directory / student / assignment
            shutil.rmtree(target_folder, ignore_errors=True)
            shutil.copytree(shard / "autograded" / student / assignment, target_folder,
                            symlinks=True)
