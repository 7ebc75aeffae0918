"""Does ``tlkit.fit`` under torchrun train as one process would? A check anyone can run (CPU).

Launches tests/ddp_job.py twice: with ``torchrun --nproc_per_node=2`` on gloo (each rank batch
size 8) and alone with the same steps written out by hand (batch size 16, the same examples in
the same order). Compares the weights; the last line is

    DDP ranks=2 identical=<True|False> max_diff_vs_single=<x>

and the exit status is non-zero when the ranks differ at all or the single process by more
than 1e-5. Usage: ``make ddp-check`` (or ``python tools/ddp_check.py``).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

JOB = Path(__file__).resolve().parent.parent / "tests" / "ddp_job.py"
RANKS, BATCH, EPOCHS, TOLERANCE = 2, 8, 2, 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out: Path, launcher: list[str], batch: int, *extra: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a laptop's cores
    done = subprocess.run([sys.executable, *launcher, str(JOB), str(out), str(EPOCHS), str(batch),
                           *extra], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(launcher) or 'the single process'} failed:\n{done.stderr[-3000:]}")
    return [torch.load(p, weights_only=False) for p in sorted(out.glob("rank*.pt"))]


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tlkit-ddp-") as tmp:
        torchrun = ["-m", "torch.distributed.run", f"--nproc_per_node={RANKS}",
                    "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
        ranks = _run(Path(tmp) / "ddp", torchrun, BATCH)
        (single,) = _run(Path(tmp) / "single", [], RANKS * BATCH, "--reference")
    if len(ranks) != RANKS:
        sys.exit(f"expected {RANKS} rank results, got {len(ranks)}")
    identical = all(torch.equal(ranks[0]["state"][k], r["state"][k])
                    for r in ranks[1:] for k in ranks[0]["state"])
    diff = max(_max_diff(r["state"], single["state"]) for r in ranks)
    print(f"per-rank batch {BATCH} x {RANKS} ranks vs one process with batch {RANKS * BATCH}, "
          f"{EPOCHS} epochs; final train_loss {ranks[0]['history'][-1]['train_loss']:.6f} vs "
          f"{single['history'][-1]['train_loss']:.6f}")
    print(f"DDP ranks={RANKS} identical={identical} max_diff_vs_single={diff:.1e}")
    return 0 if identical and diff <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
