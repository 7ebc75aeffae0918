"""Seconds per graded notebook: N honest submissions of one assignment in one nbgrader batch.

Each submission runs in the sandbox with its checks (the grader's whole cost per student).
`--tools` grades with another checkout's tools/ (and, with PYTHONPATH, its code), to compare
with an older grader. Last line: `GRADE assignment=… n=… seconds=… per_notebook=…`.

    .venv/bin/python bench/grading_cost.py --assignment ex01_sgd_update --n 6
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ex01_sgd_update")
    parser.add_argument("--n", type=int, default=6, help="submissions (copies of the solution)")
    parser.add_argument("--tools", default=str(ROOT / "tools"))
    args = parser.parse_args()
    sys.path.insert(0, args.tools)
    import grade_demo

    solution = grade_demo.SAMPLES[args.assignment]["solution"]
    samples = {f"student{i:03d}": solution for i in range(args.n)}
    with tempfile.TemporaryDirectory(prefix="tlgrade-bench-") as tmp:
        grade_demo.make_course(Path(tmp), [args.assignment])
        scores, seconds = grade_demo.grade(Path(tmp), args.assignment, samples)
    assert set(scores.values()) == {solution[1]}, f"an honest submission lost points: {scores}"
    print(f"GRADE assignment={args.assignment} n={args.n} seconds={seconds:.1f} "
          f"per_notebook={seconds / args.n:.2f}")


if __name__ == "__main__":
    main()
