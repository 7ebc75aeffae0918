"""Binder: what binder/requirements.txt asks for installs into a fresh environment and works.

repo2docker runs `pip install -r binder/requirements.txt` from the repository root (it ignores
root-level files once binder/ exists, so the file itself installs the package with ".").
Offline, neither the CPU wheel index nor PyPI can be reached: the fresh environment sees the
packages already installed in this one instead (a .pth file), and only the index lines are
dropped. Everything else — the requirement lines, "." with its extras, building and installing
tlkit as a regular (not editable) package, importing it — happens as on Binder.
"""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).parents[1]
BINDER = ROOT / "binder"


def test_binder_pins_python_and_asks_for_cpu_torch_and_the_package():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert any("download.pytorch.org/whl/cpu" in line for line in lines), "CPU wheels keep the image small"
    assert ".[course]" in lines
    assert not (BINDER / "postBuild").exists() or (BINDER / "postBuild").stat().st_mode & 0o111


def test_binder_requirements_install_into_a_fresh_environment(tmp_path):
    env = tmp_path / "binder-env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # Stand-in for the unreachable indexes: this environment's installed packages.
    Path(site, "offline-indexes.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # ensurepip's old setuptools would shadow the one the build needs (it lacks bdist_wheel).
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "setuptools"], check=False,
                   capture_output=True)
    adapted = tmp_path / "requirements.txt"
    adapted.write_text("".join(line + "\n" for line in (BINDER / "requirements.txt").read_text()
                               .splitlines() if not line.startswith("--")))
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-build-isolation", "-q", "-r", adapted],
        cwd=ROOT, capture_output=True, text=True, timeout=600)  # cwd: where repo2docker runs it
    assert install.returncode == 0, install.stdout + install.stderr
    check = subprocess.run(
        [python, "-c", "import tlkit, tlkit.teach.selfcheck, torch; print(tlkit.__file__); "
                       "print(sorted(tlkit.list_backbones(offline=True))[:1])"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    where = Path(check.stdout.splitlines()[0])
    assert where.is_relative_to(env), f"tlkit imported from {where}, not the fresh environment"
    assert "efficientnet_lite0" in check.stdout
