"""A real multi-user deployment: JupyterHub, two student accounts, nbgrader's exchange.

The hub (JupyterHub + configurable-http-proxy from npm) starts each student's own Jupyter
server as that Unix user. Each student fetches and submits through nbgrader's assignment-list
extension in their own server, reached through the hub's proxy, exactly as the "Assignments"
tab does. The instructor (root) releases and collects with nbgrader's commands. See
docs/instructors.md, "JupyterHub".
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
pytest.importorskip("tlgrade", reason="the instructor's grader: pip install -e grader")
pytest.importorskip("jupyterhub", reason="JupyterHub: pip install -e 'grader[hub]'")
import grade_chain  # noqa: E402
from grade_chain import ASSIGNMENT, COURSE  # noqa: E402

USERS = ["tl-alice", "tl-bob"]
TOKEN = "tlgrade-hub-test-" + os.urandom(8).hex()
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("configurable-http-proxy") or not shutil.which("bwrap"),
    reason="needs root (the hub spawns each student's server as that user), bubblewrap, and "
           "configurable-http-proxy (npm install -g configurable-http-proxy)")

HUB_CONFIG = """
import sys
sys.path.insert(0, {tools!r})
import pwd
from pathlib import Path

from grade_chain import as_user
from jupyterhub.spawner import LocalProcessSpawner

class StudentSpawner(LocalProcessSpawner):
    # LocalProcessSpawner becomes the user, then runs the server. This machine's Python lies
    # under /root (mode 0700), out of a student's reach, so here the server starts through
    # as_user, which becomes the user too and shows that Python to their process alone. On a
    # server with Python in /opt or /usr, use LocalProcessSpawner (or SystemdSpawner) as it is.
    def make_preexec_fn(self, name):
        return None

    async def start(self):
        home = Path(pwd.getpwnam(self.user.name).pw_dir)
        self.cmd = as_user(self.user.name, [{singleuser!r}], home=home, clean_env=False)
        self.popen_kwargs = {{"cwd": str(home)}}  # the preexec would have gone there
        return await super().start()

c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{folder}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{folder}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = set({users!r})
c.JupyterHub.spawner_class = StudentSpawner
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
c.Spawner.default_url = "/lab"
c.JupyterHub.services = [{{"name": "course-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "course-test", "services": ["course-test"],
                            "scopes": ["admin:users", "admin:servers", "access:servers"]}}]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, method: str = "GET", data: dict | None = None) -> tuple[int, object]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _up(url: str) -> bool:
    try:
        return _call(url)[0] == 200
    except urllib.error.URLError:  # not listening yet
        return False


@pytest.fixture(scope="module")
def hub():
    root = Path(tempfile.mkdtemp(prefix="tlgrade-hub-"))
    chain, process, log = grade_chain.Chain(root), None, None
    folder = root / "hub"
    port, hub_port, proxy_port = _free_port(), _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        chain = grade_chain.make_class(root)
        grade_chain.make_accounts(chain, USERS)
        folder.mkdir(mode=0o700)
        singleuser = str(Path(sys.executable).parent / "jupyterhub-singleuser")
        (folder / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
            tools=str(ROOT / "tools"), singleuser=singleuser, port=port, hub_port=hub_port,
            proxy_port=proxy_port, pid_file=str(folder / "proxy.pid"), folder=folder,
            password=os.urandom(8).hex(), users=USERS, token=TOKEN))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        log = open(folder / "hub.log", "wb")
        process = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f",
                                    str(folder / "jupyterhub_config.py")], cwd=folder, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while not _up(f"{base}/hub/api/"):
            assert process.poll() is None and time.monotonic() < deadline, \
                (folder / "hub.log").read_text()[-3000:]
            time.sleep(0.5)
        yield chain, base, folder
    finally:
        if process is not None:
            for user in USERS:
                try:
                    _call(f"{base}/hub/api/users/{user}/server", "DELETE")
                except urllib.error.URLError:  # the hub never came up
                    pass
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if log is not None:
            log.close()
        if (folder / "proxy.pid").exists():  # the proxy outlives a killed hub
            try:
                os.kill(int((folder / "proxy.pid").read_text()), 15)
            except (OSError, ValueError):
                pass
        grade_chain.cleanup(chain, USERS)
        shutil.rmtree(root, ignore_errors=True)


def _start_server(base: str, user: str, folder: Path) -> None:
    status, _ = _call(f"{base}/hub/api/users/{user}/server", "POST", {})
    assert status in (201, 202), (status, (folder / "hub.log").read_text()[-3000:])
    deadline = time.monotonic() + 120
    while True:
        _, model = _call(f"{base}/hub/api/users/{user}")
        if model["servers"].get("", {}).get("ready"):
            return
        assert time.monotonic() < deadline, (folder / "hub.log").read_text()[-3000:]
        time.sleep(1)


def test_students_fetch_and_submit_through_their_own_servers_on_the_hub(hub):
    chain, base, folder = hub
    chain.instructor("generate_assignment", "generate_assignment", ASSIGNMENT)
    chain.instructor("release_assignment", "release_assignment", ASSIGNMENT)
    for user in USERS:
        _start_server(base, user, folder)
        status, listed = _call(f"{base}/user/{user}/assignments?course_id={COURSE}")
        assert status == 200 and listed["success"], (folder / "hub.log").read_text()[-2500:]
        assert [(a["assignment_id"], a["status"]) for a in listed["value"]] == \
            [(ASSIGNMENT, "released")]
        data = {"course_id": COURSE, "assignment_id": ASSIGNMENT}
        status, fetched = _call(f"{base}/user/{user}/assignments/fetch", "POST", data)
        assert status == 200 and fetched["success"], fetched
        notebook = chain.home(user) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert notebook.stat().st_uid == pwd.getpwnam(user).pw_uid  # written by their server
        status, submitted = _call(f"{base}/user/{user}/assignments/submit", "POST", data)
        assert status == 200 and submitted["success"], submitted
        statuses = {a["status"] for a in submitted["value"]}
        assert "submitted" in statuses, submitted
    chain.instructor("collect", "collect", ASSIGNMENT)
    inbound = list((chain.exchange / COURSE / "inbound").iterdir())
    assert sorted(pwd.getpwuid(p.stat().st_uid).pw_name for p in inbound) == USERS
    for user in USERS:
        assert (chain.course / "submitted" / user / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
    assert not (chain.course / "flagged_submissions.csv").exists()  # each submitted as themselves
