"""Start-up hook for processes that must see the stand-ins (the FULL-mode lesson kernels).

Python imports only the first ``sitecustomize`` on sys.path, and tests/offline/sitecustomize.py
(the loopback-only guard) is one too. With this folder first on PYTHONPATH this one runs
instead, so it runs the offline guard itself (loaded from its file under another module name),
then — when $TLKIT_STANDINS names a manifest — installs standins_hook's import hooks.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_here = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "tlkit_tests_offline", _here.parent / "offline" / "sitecustomize.py")
offline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline)  # installs the guard when TLKIT_TESTS_OFFLINE=1

if os.environ.get("TLKIT_STANDINS"):
    import standins_hook  # this folder is on sys.path (PYTHONPATH)

    standins_hook.install_lazy(os.environ["TLKIT_STANDINS"])
