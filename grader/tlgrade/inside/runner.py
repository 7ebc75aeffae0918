"""Runs inside the sandbox: execute the submitted notebook in a kernel, then the probes.

``python -I runner.py JOB.json``. A first cell the student never sees makes the tlkit functions
their tasks ask them to write refuse to run; a last one runs ``probes.run`` in the same kernel.
Both are removed again before the executed notebook is written back. Each cell may run
``cell_timeout`` seconds; an endless loop is interrupted and the notebook goes on.
"""
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

# jsonschema (under nbformat) imports rfc3987_syntax when it is installed, which builds a parser
# at import time: 2 s of every graded notebook, for an IRI format nbformat never checks.
sys.modules.setdefault("rfc3987_syntax", None)  # None: its import fails, and jsonschema skips it

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(job_path: str) -> None:
    print(f"runner started {datetime.now(timezone.utc).isoformat()}", file=sys.stderr)
    job = json.loads(Path(job_path).read_text())
    os.makedirs(os.environ["HOME"], exist_ok=True)  # a fresh, private home for the kernel
    nb = nbformat.read(job["notebook"], as_version=4)
    preamble = nbformat.v4.new_code_cell(
        "from tlkit.teach.selfcheck import forbid as _tlgrade_forbid\n"
        f"_tlgrade_forbid({job['assignment']!r})\n"
        "del _tlgrade_forbid")
    probes = nbformat.v4.new_code_cell(
        "_tlgrade = {'__name__': 'tlgrade_probes'}\n"
        f"exec(compile(open({str(HERE / 'probes.py')!r}).read(), 'probes.py', 'exec'), _tlgrade)\n"
        f"_tlgrade['run']({job_path!r}, get_ipython().user_ns)")
    nb.cells = [preamble, *nb.cells, probes]

    def timeout(cell) -> int:
        return job["probe_timeout"] if cell is probes else job["cell_timeout"]

    # "immediate": a graceful shutdown waits seconds for the kernel, for nothing we need.
    client = NotebookClient(nb, timeout_func=timeout, allow_errors=True,
                            shutdown_kernel="immediate", interrupt_on_timeout=True,
                            kernel_name="python3",
                            resources={"metadata": {"path": str(Path(job["notebook"]).parent)}})
    try:
        client.execute()
    except Exception as error:  # a kernel the notebook killed: keep what ran
        print(f"execution stopped: {type(error).__name__}", file=sys.stderr)
    for name, cell in (("preamble", nb.cells[0]), ("probes", nb.cells[-1])):
        timing = cell.metadata.get("execution", {})
        print(f"{name}: {timing.get('iopub.execute_input')} .. {timing.get('shell.execute_reply')}",
              file=sys.stderr)
    nb.cells = nb.cells[1:-1]
    nbformat.write(nb, job["executed"])


if __name__ == "__main__":
    main(sys.argv[1])
