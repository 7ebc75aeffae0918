"""Autograde N submissions serially (plain `nbgrader autograde`) and in parallel (tlgrade), compare.

The submissions are copies of the sample submissions of one assignment (tools/grade_samples.py:
the solution, the untouched release, typical mistakes and cheats), cycled to N students; the
samples built to run into a time limit (an endless loop, slow exploration) are left out, since
they measure the limit, not the grader. Both runs use the same course secret, so each student's
hidden inputs are the same in both, and every grade of every cell must agree.
Last line: `P5 submissions=<N> serial_s=<a> parallel_s=<b> ratio=<a/b> per_notebook_s=<b/N>`.

    .venv/bin/python bench/autograde.py              # N = 24
    .venv/bin/python bench/autograde.py --n 200      # a class
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def grades(database: Path, assignment: str, course: str = "transfer-learning") -> dict[str, tuple]:
    """student -> (score, every grade and comment field autograding sets, per cell)."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{database}", course) as gb:
        for submission in gb.find_assignment(assignment).submissions:
            cells = tuple(sorted(
                (nb.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade)
                for nb in submission.notebooks for g in nb.grades))
            comments = tuple(sorted((nb.name, c.name, c.auto_comment, c.manual_comment)
                                    for nb in submission.notebooks for c in nb.comments))
            late = tuple(nb.late_submission_penalty for nb in submission.notebooks)
            out[submission.student.id] = (submission.score, cells, comments, late,
                                          submission.timestamp)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="submissions")
    parser.add_argument("--assignment", default="ex01_sgd_update")
    parser.add_argument("--workers", type=int, default=0, help="default: one per core")
    args = parser.parse_args()
    import grade_demo
    from tlgrade.parallel import autograde

    samples = {k: v for k, v in grade_demo.SAMPLES[args.assignment].items()
               if "endless" not in k and "slow" not in k}
    names = sorted(samples)
    students = {f"student{i:03d}": samples[names[i % len(names)]] for i in range(args.n)}
    print(f"{args.n} submissions of {args.assignment}: copies of {len(names)} samples; "
          f"{len(os.sched_getaffinity(0))} cores")
    with tempfile.TemporaryDirectory(prefix="tlgrade-p5-") as tmp:
        secret = grade_demo.demo_secret(Path(tmp, "secret"))
        runs = {}
        for kind in ("serial", "parallel"):
            course = Path(tmp, kind)
            course.mkdir()
            grade_demo.make_course(course, [args.assignment])
            api = grade_demo.api_for(course, CourseSecret={"path": str(secret)})
            assert api.generate_assignment(args.assignment)["success"]
            grade_demo.write_submissions(course, args.assignment, students)
            (course / "nbgrader_config.py").open("a").write(
                f"\nc.CourseSecret.path = {str(secret)!r}\n")
            start = time.perf_counter()
            if kind == "serial":
                api.autograde(args.assignment, "*")
            else:
                report = autograde(course=course, assignment=args.assignment,
                                   workers=args.workers)
                assert not report.failed, report.failed
            runs[kind] = (time.perf_counter() - start, grades(course / "gradebook.db",
                                                                args.assignment))
            print(f"{kind}: {runs[kind][0]:.1f} s")
    (serial_s, serial), (parallel_s, parallel) = runs["serial"], runs["parallel"]
    differ = [s for s in students if serial.get(s) != parallel.get(s)]
    if differ or len(serial) != args.n:
        print(f"the runs disagree for {differ} (serial graded {len(serial)})")
        return 1
    print(f"every one of {args.n} submissions: the same score in every cell, serial and parallel")
    print(f"P5 submissions={args.n} serial_s={serial_s:.1f} parallel_s={parallel_s:.1f} "
          f"ratio={serial_s / parallel_s:.2f} per_notebook_s={parallel_s / args.n:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
