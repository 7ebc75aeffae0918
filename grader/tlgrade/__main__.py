"""``python -m tlgrade answers`` (rewrite tlkit's hashed answers) · ``python -m tlgrade secret PATH``."""
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
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
