"""P7: what ``import tlkit`` costs a fresh Python process, against ``import torch`` alone.

Every kernel start, every lesson and every autograded notebook pays it, so it is measured the
way they pay it: a whole new interpreter per run (``python -c "..."``), wall-clock from start
to exit, runs of the different statements interleaved (torch, tlkit, torch, tlkit, ...) so a
busy moment of a shared machine hits all of them alike; the medians are reported.

Besides the P7 pair it times what lessons do next, to show where the cost went:

* ``tlkit.setup()`` — a lesson's first cell (it seeds torch, so torch is loaded here);
* ``tlkit.fit``, ``tlkit.get_backbone``, ``tlkit.plot_history`` — looking the name up, which
  imports its module: torch for the first two; torchvision and timm come only when a backbone
  is built, matplotlib only when a plot is drawn.

The last line is::

    P7 import_ratio=<tlkit / torch> tlkit_s=<a> torch_s=<b>

Run: ``.venv/bin/python bench/import_time.py [--runs 5] [--tree PATH]`` (``--tree`` measures the
tlkit of another checkout, e.g. an older commit in a git worktree).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "import torch": "import torch",
    "import tlkit": "import tlkit",
    "tlkit.setup()": "import tlkit; tlkit.setup(quiet=True)",
    "tlkit.fit": "import tlkit; tlkit.fit",
    "tlkit.get_backbone": "import tlkit; tlkit.get_backbone",
    "tlkit.plot_history": "import tlkit; tlkit.plot_history",
}


def run_once(code: str, env: dict) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one fresh interpreter running ``code``."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                             cwd="/")
    _, status, usage = os.wait4(child.pid, 0)  # the child's own peak RSS, in KiB on Linux
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{code!r} failed with exit code {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per statement")
    parser.add_argument("--tree", help="measure the tlkit package found in this folder")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    if args.tree:
        env["PYTHONPATH"] = os.path.abspath(args.tree)
    times = {name: [] for name in STATEMENTS}
    memory = {name: [] for name in STATEMENTS}
    for name, code in STATEMENTS.items():  # one untimed run each: the disk cache warms up
        run_once(code, env)
    for round_ in range(args.runs):
        for name, code in STATEMENTS.items():
            seconds, megabytes = run_once(code, env)
            times[name].append(seconds)
            memory[name].append(megabytes)
        print(f"round {round_ + 1}: " + "  ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()),
              flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedians of {args.runs} interleaved runs (load average {load:.2f}, "
          f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}):")
    for name, seconds in medians.items():
        print(f"  {name:<20} {seconds:6.2f} s   {seconds / medians['import torch']:5.2f} × torch"
              f"   peak {statistics.median(memory[name]):6.0f} MB")
    torch_s, tlkit_s = medians["import torch"], medians["import tlkit"]
    print(f"P7 import_ratio={tlkit_s / torch_s:.2f} tlkit_s={tlkit_s:.2f} torch_s={torch_s:.2f}")


if __name__ == "__main__":
    main()
