"""python -m tlgrade answers                  rewrite tlkit's hashed answers
python -m tlgrade secret PATH              a new course secret
python -m tlgrade autograde ASSIGNMENT [--workers N] [--course DIR]
                                           autograde in parallel, merged into the gradebook
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv[:1] == ["answers"]:
        from .answers import write_table

        print(f"wrote {write_table()}")
        return 0
    if argv[:1] == ["secret"] and len(argv) == 2:
        from .secret import make_secret

        print(f"wrote a new course secret to {make_secret(argv[1])} (keep it; chmod 600)")
        return 0
    if argv[:1] == ["autograde"]:
        return _autograde(argv[1:])
    print(__doc__)
    return 2


def _autograde(argv: list[str]) -> int:
    import argparse
    from pathlib import Path

    from .parallel import autograde

    parser = argparse.ArgumentParser(prog="python -m tlgrade autograde")
    parser.add_argument("assignment")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    parser.add_argument("--course", default=".", help="the course folder (default: here)")
    parser.add_argument("--force", action="store_true",
                        help="grade again what was graded already (as nbgrader's --force)")
    args = parser.parse_args(argv)
    report = autograde(course=Path(args.course), assignment=args.assignment,
                       workers=args.workers, force=args.force)
    print(f"{args.assignment}: {len(report.graded)} graded in {report.seconds:.0f} s"
          + (f", {len(report.retried)} of them again after a worker stopped" if report.retried else ""))
    for student, why in report.failed.items():
        print(f"NOT graded: {student}: {why}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
