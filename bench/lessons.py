"""Execute each lesson headless and report its wall time and the kernel's peak memory.

The course promises every lesson runs offline in <= 90 s with <= 1.5 GB peak resident memory
on 2 CPU cores (Binder gives 2 GB). This script measures both, one notebook at a time:

    python bench/lessons.py                       # every notebook in course/
    python bench/lessons.py course/04_*.ipynb     # some of them
    python bench/lessons.py --save /tmp/run       # and keep the executed copies to read

Last line: ``LESSONS max_seconds=<s> max_peak_mb=<mb>``.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run(path: Path, save: Path | None = None) -> tuple[float, float]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    peak = 0.0
    done = threading.Event()

    def watch() -> None:
        # Poll the kernel process's resident memory (and its children's) every 50 ms.
        nonlocal peak
        while not done.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                try:
                    proc = psutil.Process(pid)
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True))
                    peak = max(peak, rss / 1e6)
                except psutil.Error:
                    pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        if save is not None:  # also when a cell failed: the traceback is in the copy
            save.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, save / path.name)
    return seconds, peak


def main(argv: list[str]) -> None:
    save = None
    if "--save" in argv:
        i = argv.index("--save")
        if i + 1 >= len(argv):
            sys.exit("--save needs a folder: python bench/lessons.py --save /tmp/run")
        save, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    paths = [Path(a) for a in argv] or sorted((ROOT / "course").glob("[0-9]*.ipynb"))
    worst_s, worst_mb = 0.0, 0.0
    for path in paths:
        seconds, mb = run(path, save)
        worst_s, worst_mb = max(worst_s, seconds), max(worst_mb, mb)
        flag = "" if seconds <= 90 and mb <= 1500 else "   <-- over budget (90 s / 1500 MB)"
        print(f"{path.name:<40} {seconds:6.1f} s  {mb:7.0f} MB peak{flag}", flush=True)
    print(f"LESSONS max_seconds={worst_s:.1f} max_peak_mb={worst_mb:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
