"""The sandbox every submission runs in: bubblewrap, an unprivileged user, and resource limits.

Why bubblewrap: it is a Debian package, needs no daemon or set-up, runs as an ordinary user
(unprivileged user namespaces), and is what Flatpak uses to confine applications. nsjail would
do as well but is not packaged for Debian. Inside the sandbox:

- no network (a network namespace of its own, with only loopback, for the kernel);
- the whole system read-only; ``/tmp`` and ``$HOME`` are fresh and private, and the course
  folder (gradebook, ``solutions/``, other submissions), the grader's package, the course
  secret and the shared caches are not there at all; files named in ``masks`` are replaced;
- one private writable folder, ``/submission``: the notebook, its inputs and results;
- limits on memory, CPU time, processes, file size, and a wall-clock limit from outside;
- its own process tree: killing its parent ends only this sandbox.

Run as root, the sandbox drops to ``nobody`` first where nobody can run the Python environment,
so the process limit applies and files that are not world-readable stay unreadable; where it
cannot, it is nobody only inside its user namespace (the kernel exempts root from the process
limit: grade as an ordinary user to have it). Without bubblewrap it refuses, unless told to run unsafe.

Example::

    box = Sandbox(hide=[course_root], masks={}, limits=Limits())
    box.run(["python", "-I", "/grader/runner.py", "/submission/job.json"], work=work,
            inside=inside, env={...}, timeout=600)
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "Sandbox", "SandboxMissing", "NOBODY"]

NOBODY = 65534


class SandboxMissing(RuntimeError):
    """bubblewrap is not installed, and running unsafe was not allowed."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 6 * 2**30  # address space per process
    cpu_seconds: int = 900
    processes: int = 512
    file_bytes: int = 256 * 2**20  # largest file a submission may write (notebook, results)
    tmp_bytes: int = 1 * 2**30  # /tmp and $HOME together


@dataclass
class Sandbox:
    hide: list[Path] = field(default_factory=list)  # folders or files that must not be visible
    masks: dict[str, Path] = field(default_factory=dict)  # real file -> what to show instead
    limits: Limits = field(default_factory=Limits)
    unsafe: bool = False  # run without bubblewrap (student code then runs as you)

    def available(self) -> bool:
        return shutil.which("bwrap") is not None

    def command(self, argv: list[str], *, work: Path, inside: Path, env: dict[str, str]) -> list[str]:
        """The bwrap command line that runs ``argv`` in the sandbox."""
        keep = [Path(sys.prefix), Path(sys.base_prefix), *_tlkit_dirs()]
        cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all", "--cap-drop", "ALL",
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--size", str(self.limits.tmp_bytes), "--tmpfs", "/tmp"]
        hidden = [Path(os.path.expanduser("~")), *self.hide]
        cmd += _hiding(hidden)
        # The fresh /tmp and the hidden folders cover whatever lies below them: the Python
        # environment too, when it is there (a clone in /tmp, a venv in the course folder).
        kept = [p for p in keep if p.exists() and any(_inside(p, h) for h in [Path("/tmp"), *hidden])]
        for path in kept:  # the Python environment, where a hidden folder holds it
            cmd += ["--ro-bind", str(path), str(path)]
        # ...and hidden again what lies inside it (the grader itself, installed in the venv).
        cmd += _hiding([h for h in hidden if any(_inside(h, p) for p in kept)])
        for real, shown in self.masks.items():
            cmd += ["--ro-bind", str(shown), real]
        cmd += ["--bind", str(work), "/tmp/submission", "--ro-bind", str(inside), "/tmp/grader",
                "--chdir", "/tmp/submission", "--clearenv"]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        return cmd + ["--", *argv]

    def run(self, argv: list[str], *, work: Path, inside: Path, env: dict[str, str],
            timeout: float, log: Path | None = None) -> str | None:
        """Run ``argv``; None when it finished, else why it was stopped. ``log``: its stderr."""
        if self.available():
            cmd, cwd = self.command(argv, work=work, inside=inside, env=env), None
            # As root: become nobody, if nobody can run this Python; else stay root outside and
            # be nobody only inside the sandbox's user namespace (no process limit then).
            drop = os.getuid() == 0 and _world_readable(Path(sys.base_prefix))
            if drop:
                _give_to_nobody(work)
            elif os.getuid() == 0:
                cmd[1:1] = ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        elif self.unsafe:
            cmd, cwd, drop = argv, work, False
        else:
            raise SandboxMissing(
                "bubblewrap is not installed, so submissions cannot be sandboxed: install it "
                "(as root: apt-get install bubblewrap). To grade without a sandbox anyway — "
                "student code then runs as you and can read and write your files — set "
                "c.SandboxedExecute.allow_unsafe = True.")
        with open(log or os.devnull, "wb") as err:
            process = subprocess.Popen(cmd, cwd=cwd, env=env if cwd else None,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err, start_new_session=True,
                                       preexec_fn=lambda: _limit(self.limits, drop=drop))
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return f"the notebook did not finish within {timeout:.0f} s"
        return None


def _limit(limits: Limits, *, drop: bool) -> None:
    # Runs in the child before bwrap starts: the limits hold for everything inside.
    for name, value in ((resource.RLIMIT_AS, limits.memory_bytes),
                        (resource.RLIMIT_CPU, limits.cpu_seconds),
                        (resource.RLIMIT_NPROC, limits.processes),
                        (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(name, (value, value))
    if drop:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def _world_readable(path: Path) -> bool:
    """Can every user reach ``path`` (each folder above it searchable, it readable)?"""
    path = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in [*path.parents, path]) and \
        bool(path.stat().st_mode & 0o004)


def _give_to_nobody(work: Path) -> None:
    for path in [work, *work.rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)


def _hiding(paths: list[Path]) -> list[str]:
    args = []
    for path in paths:
        if path.is_dir():
            args += ["--size", str(2**20), "--tmpfs", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _tlkit_dirs() -> list[Path]:
    import tlkit

    return [Path(tlkit.__file__).resolve().parent]
