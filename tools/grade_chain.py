"""nbgrader's whole chain with real Unix accounts, offline: the instructor is this process (root),
and three students are local accounts made for the run and removed after it.

    release_assignment → fetch_assignment → submit (each student as themselves) → collect →
    autograde → generate_feedback → release_feedback → fetch_feedback → export

Every step is nbgrader's own command through its own exchange (a folder every account can
reach, as on a shared server). On the way, alice also submits in bob's name
(``--student=tl-bob``): collect refuses that one and lists it in flagged_submissions.csv. carol
hands in after the due date and loses 10 % a started day. Each student can fetch only their own
feedback. ``make grade-demo`` runs it and prints the grades; tests/test_chain.py asserts each step.

    python tools/grade_chain.py
"""
from __future__ import annotations

import csv
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grade_demo import make_course  # noqa: E402
from grade_samples import SIGN_MISTAKE, solve  # noqa: E402

ASSIGNMENT = "ex01_sgd_update"
COURSE = "transfer-learning"
BIN = Path(sys.executable).parent
# account -> (first name, the work they hand in, its score before any late penalty)
STUDENTS = {"tl-alice": ("Alice Liddell", [solve()], 8.0),
            "tl-bob": ("Bob Marley", [SIGN_MISTAKE], 4.0),
            "tl-carol": ("Carol Danvers", [solve()], 8.0)}
LATE = "tl-carol"
TAG = "tlgrade chain test account"  # the accounts' comment: only these are ever removed
FORGER, FORGED = "tl-alice", "tl-bob"  # alice submits once more, in bob's name
# The course's own nbgrader_config.py, which refuses forged submissions and takes 10 % a day
# off late ones, plus where this run's exchange is.
COURSE_CONFIG = """
c.Exchange.root = {exchange!r}  # added by tools/grade_chain.py
"""
STUDENT_CONFIG = """c = get_config()  # noqa: F821
c.Exchange.root = {exchange!r}
c.CourseDirectory.course_id = {course!r}
"""


@dataclass
class Chain:
    root: Path  # the run's folder: course/, exchange/, home/<account>/
    steps: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    due: datetime | None = None
    planted: dict[str, str] = field(default_factory=dict)  # attack -> its entry in the exchange

    @property
    def course(self) -> Path:
        return self.root / "course"

    @property
    def exchange(self) -> Path:
        return self.root / "exchange"

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def instructor(self, step: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """An nbgrader command as the instructor, in the course folder."""
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        return self._record(step, subprocess.run([str(BIN / "nbgrader"), *args], cwd=self.course,
                                                 env=env, capture_output=True, text=True), check)

    def student(self, step: str, user: str, *args: str, check: bool = True,
                program: str | None = None) -> subprocess.CompletedProcess:
        """A command as the student ``user`` (their own uid, home and environment)."""
        argv = [program or str(BIN / "nbgrader"), *args]
        return self._record(step, subprocess.run(as_user(user, argv, home=self.home(user)),
                                                 cwd=self.home(user), capture_output=True,
                                                 text=True), check)

    def _record(self, step, done, check):
        self.steps[step] = done
        if check and done.returncode != 0:
            raise RuntimeError(f"{step} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                               f"\n{done.stderr[-3000:]}")
        return done


def as_user(user: str, argv: list[str], *, home: Path, clean_env: bool = True) -> list[str]:
    """``argv`` as ``user``: their uid, groups, and (``clean_env``) home and environment."""
    env = ["env", "-i", f"HOME={home}", f"USER={user}", f"LOGNAME={user}", "LANG=C.UTF-8",
           f"PATH={BIN}:/usr/bin:/bin"] if clean_env else []
    drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    blocked = _unreachable_parents([Path(sys.base_prefix), Path(sys.prefix)])
    if not blocked:
        return [*drop, *env, *argv]
    # This Python lies under a folder other accounts cannot enter (here /root, mode 700). A
    # server installs it where everyone can run it; to the same effect, the student's process
    # sees it in a mount namespace of its own, and nothing else of that folder.
    mounts = ["bwrap", "--dev-bind", "/", "/"]
    for folder in blocked:
        mounts += ["--tmpfs", str(folder)]
    for path in sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}):
        top = [folder for folder in blocked if folder in path.parents]
        if top:
            between = [p for p in reversed(path.parents) if top[0] in p.parents]
            for folder in between:  # bwrap would make these 0700: the student must pass
                mounts += ["--perms", "0755", "--dir", str(folder)]
            mounts += ["--ro-bind", str(path), str(path)]
    return [*mounts, "--", *drop, *env, *argv]


def _unreachable_parents(paths: list[Path]) -> list[Path]:
    return sorted({folder for path in paths for folder in path.resolve().parents
                   if not os.stat(folder).st_mode & 0o001})


# --- accounts --------------------------------------------------------------------------------

def make_accounts(chain: Chain, users=STUDENTS) -> None:
    (chain.root / "home").mkdir(exist_ok=True)
    for user in users:
        remove_account(user)  # left over from an interrupted run
        # Debian's default home is readable by all (HOME_MODE unset, UMASK 022): a class needs
        # 0700, or anyone could read anyone's fetched feedback.
        subprocess.run(["useradd", "--create-home", "--home-dir", str(chain.home(user)),
                        "--shell", "/bin/bash", "--user-group", "-K", "HOME_MODE=0700",
                        "--comment", TAG, user], check=True, capture_output=True)
        # Where the exchange is (a server puts this in /etc/jupyter/nbgrader_config.py).
        _write_as(user, chain.home(user) / ".jupyter" / "nbgrader_config.py",
                  STUDENT_CONFIG.format(exchange=str(chain.exchange), course=COURSE))


def remove_account(user: str) -> None:
    """Remove an account this tool made (and only such a one)."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return
    if account.pw_gecos != TAG:
        raise RuntimeError(f"an account named {user} exists and was not made by this tool "
                           f"(its comment is {account.pw_gecos!r}, not {TAG!r}): rename it, "
                           "or run the chain on another machine")
    # This run's account: whatever it still runs (a server the hub left) goes with it.
    subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
    for _ in range(50):
        if subprocess.run(["userdel", user], capture_output=True).returncode != 8:  # 8: in use
            return
        time.sleep(0.1)
    subprocess.run(["userdel", user], check=True, capture_output=True)


# --- the chain -------------------------------------------------------------------------------

def make_class(root: Path) -> Chain:
    """The instructor's course folder and the exchange everyone reaches, under ``root``."""
    chain = Chain(root)
    root.chmod(0o755)  # the students reach their homes and the exchange through it
    chain.course.mkdir(mode=0o700)  # the instructor's: gradebook, solutions, submissions
    chain.exchange.mkdir()
    chain.exchange.chmod(0o777)  # nbgrader's documented exchange: everyone may write
    make_course(chain.course, [ASSIGNMENT])
    with open(chain.course / "nbgrader_config.py", "a") as f:
        f.write(COURSE_CONFIG.format(exchange=str(chain.exchange)))
    return chain


def run_chain(root: Path, *, log=print) -> Chain:
    """Every step, in order; raises with nbgrader's output when one fails."""
    if os.geteuid() != 0:
        raise PermissionError("the chain creates Unix accounts: run it as root (or with sudo)")
    chain = make_class(root)
    make_accounts(chain)

    log(f"instructor: generate and release {ASSIGNMENT}; students "
        + ", ".join(STUDENTS) + " enrolled")
    chain.instructor("generate_assignment", "generate_assignment", ASSIGNMENT)
    chain.instructor("release_assignment", "release_assignment", ASSIGNMENT)
    for number, (user, (name, _, _)) in enumerate(STUDENTS.items()):
        first, last = name.split()
        chain.instructor(f"enrol {user}", "db", "student", "add", user, f"--first-name={first}",
                         f"--last-name={last}", f"--email={user}@example.org",
                         f"--lms-user-id={1001 + number}")  # their id in the LMS (Canvas)

    for user, (_, edits, _) in STUDENTS.items():
        if user == LATE:
            continue
        _fetch_work_submit(chain, user, edits)
    log(f"{FORGER} submits once more, as {FORGED} (--student={FORGED})")
    chain.student("forged submit", FORGER, "submit", ASSIGNMENT, f"--student={FORGED}")
    log("and entries planted in the exchange by hand: a link, a link to the solutions inside a "
        "submission, a name without a time, a backdated submission")
    plant_attacks(chain)
    chain.due = datetime.now(timezone.utc)
    chain.instructor("set due date", "db", "assignment", "add", ASSIGNMENT,
                     f"--duedate={chain.due.isoformat()}")
    log(f"due date set to {chain.due:%H:%M:%S.%f} UTC; {LATE} hands in after it")
    time.sleep(1.0)
    _fetch_work_submit(chain, LATE, STUDENTS[LATE][1])

    log("instructor: collect, autograde, generate and release feedback")
    chain.instructor("collect", "collect", ASSIGNMENT)
    chain.instructor("autograde", "autograde", ASSIGNMENT)
    chain.instructor("generate_feedback", "generate_feedback", ASSIGNMENT)
    chain.instructor("release_feedback", "release_feedback", ASSIGNMENT)
    for user in STUDENTS:
        chain.student(f"fetch_feedback {user}", user, "fetch_feedback", ASSIGNMENT)
    # bob tries to get alice's feedback: by her id, by listing the exchange, from her home.
    chain.student("bob fetches alice's feedback", "tl-bob", "fetch_feedback", ASSIGNMENT,
                  "--student=tl-alice", check=False)
    chain.student("bob lists the feedback", "tl-bob", "ls",
                  str(chain.exchange / COURSE / "feedback"), program="env", check=False)
    chain.student("bob reads alice's home", "tl-bob", "ls", "-R", str(chain.home("tl-alice")),
                  program="env", check=False)
    chain.student("bob lists the submissions", "tl-bob", "ls",
                  str(chain.exchange / COURSE / "inbound"), program="env", check=False)
    chain.student("bob reads the gradebook", "tl-bob", "cat",
                  str(chain.course / "gradebook.db"), program="env", check=False)
    log("instructor: export (nbgrader's CSV, and Canvas / Moodle CSV)")
    chain.instructor("export", "export", "--to", "grades.csv")
    chain.instructor("export canvas", "export", "--exporter=tlgrade.export.CanvasExport",
                     "--to", "canvas.csv")
    chain.instructor("export moodle", "export", "--exporter=tlgrade.export.MoodleExport",
                     "--to", "moodle.csv")
    return chain


# What a student can write into the exchange's inbound folder (mode 0733) without nbgrader:
# account -> (name of the entry, shell lines that make it). Collect must refuse each.
def _attacks(chain: Chain) -> dict[str, tuple[str, str, str]]:
    inbound = chain.exchange / COURSE / "inbound"
    solution = chain.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    now = datetime.now(timezone.utc)
    stamp = f"{now:%Y-%m-%d %H:%M:%S.%f} UTC"
    old = f"{now.replace(year=now.year - 1):%Y-%m-%d %H:%M:%S.%f} UTC"
    bobs = chain.home("tl-bob") / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return {
        "link in carol's name": ("tl-bob", f"tl-carol+{ASSIGNMENT}+{stamp}+link",
                                 f'ln -s {chain.home("tl-carol")} "$E"'),
        "link to the solutions inside": (
            "tl-alice", f"tl-alice+{ASSIGNMENT}+{stamp}+inner",
            f'mkdir "$E" && ln -s {solution} "$E/{ASSIGNMENT}.ipynb" && '
            f'echo "{stamp}" > "$E/timestamp.txt"'),
        "no valid time": ("tl-bob", f"tl-bob+{ASSIGNMENT}+yesterday+junk", 'mkdir "$E"'),
        "backdated": ("tl-bob", f"tl-bob+{ASSIGNMENT}+{old}+back",
                      f'mkdir "$E" && cp {bobs} "$E/" && echo "{old}" > "$E/timestamp.txt"'),
    }, inbound


def plant_attacks(chain: Chain) -> None:
    attacks, inbound = _attacks(chain)
    for step, (user, name, script) in attacks.items():
        chain.student(f"plant: {step}", user, "sh", "-c", f'E="{inbound / name}"; {script}',
                      program="env")
        chain.planted[step] = name


def _fetch_work_submit(chain: Chain, user: str, edits) -> None:
    chain.student(f"fetch {user}", user, "fetch_assignment", ASSIGNMENT)
    path = chain.home(user) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(path, as_version=4)
    source = nbformat.read(chain.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                           as_version=4)
    for edit in edits:
        edit(nb, source)
    _write_as(user, path, nbformat.writes(nb))
    chain.student(f"submit {user}", user, "submit", ASSIGNMENT)


def _write_as(user: str, path: Path, text: str) -> None:
    """The student's own edit: the file is theirs, as if they had saved it."""
    account = pwd.getpwnam(user)
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        os.chown(path.parent, account.pw_uid, account.pw_gid)
    path.write_text(text)
    os.chown(path, account.pw_uid, account.pw_gid)


def cleanup(chain: Chain, users=STUDENTS) -> None:
    for user in users:
        remove_account(user)  # its group goes with it; its home with the run's folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> int:
    os.environ.setdefault("TLKIT_GRADING_SEED", "1")  # the samples' scores hold for this draw
    with tempfile.TemporaryDirectory(prefix="tlgrade-chain-") as tmp:
        chain = Chain(Path(tmp))
        try:
            chain = run_chain(Path(tmp))
            flagged = (chain.course / "flagged_submissions.csv")
            print("\nflagged_submissions.csv (collect refused these):")
            print(flagged.read_text() if flagged.exists() else "(none)\n")
            for name in ("grades.csv", "canvas.csv", "moodle.csv"):
                print(f"{name} (nbgrader export):")
                print((chain.course / name).read_text())
        finally:
            cleanup(chain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
