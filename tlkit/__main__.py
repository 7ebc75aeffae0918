"""Command line: ``tlkit doctor``, ``tlkit demo`` and ``tlkit reproduce animals`` (also
``python -m tlkit ...``)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "doctor":
        from .teach.doctor import doctor

        doctor()
    elif command == "demo":
        from .teach.demo import main as demo

        demo(rest)
    elif command == "reproduce":
        from .teach.reproduce import main as reproduce

        reproduce(rest)
    else:
        print("usage: tlkit doctor | tlkit demo [--ks 2 5 10 25] [--seeds 0 1 2] [--out results]"
              " | tlkit reproduce animals [--epochs 2] [--limit N]  (FULL mode: downloads)")
        sys.exit(0 if command in ("help", "-h", "--help") else 2)


if __name__ == "__main__":
    main()
