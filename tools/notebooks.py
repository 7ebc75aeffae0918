"""Keep every notebook's Colab badge and Colab install cell in sync with one address.

The repository address lives in one place, ``pyproject.toml`` → ``[project.urls] Repository``.
A fork changes that line and runs ``make badges``; this script rewrites the badge in the first
markdown cell and the install cell (tagged ``colab-install``) of every notebook in course/ and
solutions/ (whose badges open the student versions in exercises/), and strips outputs so the
committed notebooks stay clean; `make badges` then regenerates exercises/ with nbgrader.

    python tools/notebooks.py sync      # rewrite in place
    python tools/notebooks.py check     # exit 1 and list notebooks that are out of date
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# exercises/ is not rewritten here: nbgrader generates it from solutions/ (`make exercises`).
FOLDERS = ("course", "solutions")
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repo_url() -> str:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    return urls["Repository"].rstrip("/")


def colab_badge(path: Path, url: str | None = None) -> str:
    """The markdown badge that opens ``path`` (relative to the repository) in Colab."""
    url = url or repo_url()
    github = url.removeprefix("https://github.com/")
    rel = path.resolve().relative_to(ROOT).as_posix()
    # A source notebook's badge opens the student version that nbgrader generates from it.
    rel = rel.replace("solutions/", "exercises/", 1) if rel.startswith("solutions/") else rel
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{github}/blob/main/{rel})")


def install_source(url: str | None = None) -> str:
    """The first code cell: on Colab only, install tlkit (Colab keeps its own torch/Jupyter)."""
    url = url or repo_url()
    return (
        "# On Google Colab only: install tlkit from the course repository. Colab's own torch\n"
        "# and Jupyter already satisfy tlkit's requirements, so pip leaves them as they are.\n"
        "import subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    command = [sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"tlkit @ git+{url}\"]\n"
        "    print(\" \".join(command))\n"
        "    subprocess.run(command, check=True)")


def notebooks() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def synced(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` with badge, install cell and stripped outputs up to date."""
    nb = nbformat.read(path, as_version=4)
    badge = colab_badge(path)
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first_md is not None:
        if BADGE_RE.search(first_md.source):
            first_md.source = BADGE_RE.sub(lambda _: badge, first_md.source, count=1)
        else:
            first_md.source = f"{badge}\n\n{first_md.source}"
    for cell in nb.cells:
        if "colab-install" in cell.metadata.get("tags", []):
            cell.source = install_source()
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    stale = []
    for path in notebooks():
        new = nbformat.writes(synced(path)) + "\n"
        if new != path.read_text():
            stale.append(path.relative_to(ROOT))
            if command == "sync":
                path.write_text(new)
    if command == "check" and stale:
        print("out of date (run `make badges`):", *stale, sep="\n  ")
        return 1
    print(f"{'rewrote' if command == 'sync' else 'checked'} {len(stale) if command == 'sync' else len(notebooks())} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
