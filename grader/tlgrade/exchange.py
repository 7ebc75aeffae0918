"""Collect that takes a submission only from the account it names, and flags the rest.

nbgrader's exchange names each submission ``<student>+<assignment>+<timestamp>+<random>`` in a
folder every student may write to, and trusts the name: ``nbgrader submit --student=bob`` lets
alice write bob's name there. nbgrader's collect only warns (``check_owner``), then takes the
newest submission per name, so alice's would replace bob's own. Here an entry is collected only
when it is a real folder (no link), and it and everything in it (no links, no devices) belong
to the Unix account it names, and its time is not earlier than the exchange received it. Any
other entry stays in the exchange as evidence, is kept out of the gradebook, and gets a row in
``flagged_submissions.csv`` in the course folder saying why. One bad entry never stops the
collection of the others.

Example (nbgrader_config.py)::

    c.ExchangeFactory.collect = "tlgrade.exchange.OwnerCheckedCollect"
"""
from __future__ import annotations

import csv
import os
import pwd
import stat
from datetime import timedelta
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from nbgrader.utils import check_mode, parse_utc
from traitlets import Float, Unicode

__all__ = ["OwnerCheckedCollect", "FLAG_COLUMNS"]

FLAG_COLUMNS = ["assignment", "claimed_student", "owner", "timestamp", "exchange_file", "reason"]


class OwnerCheckedCollect(ExchangeCollect):
    flag_file = Unicode("flagged_submissions.csv",
                        help="Where refused submissions are listed (relative: in the course "
                             "folder).").tag(config=True)
    clock_slack = Float(300.0, help="Seconds a submission's own time may lie before the moment "
                                    "the exchange received it (clocks differ a little).").tag(config=True)

    def init_src(self):
        # nbgrader's checks, then every entry judged on its own (nbgrader's would stop at the
        # first malformed name).
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        if not check_mode(self.inbound_path, read=True, execute=True):
            self.fail(f"You don't have read permissions for the directory: {self.inbound_path}")
        self.duedate = self._duedate()
        wanted = self.coursedir.student_id if self.coursedir.student_id not in ("", "*") else None
        genuine, flagged = [], []
        for name in sorted(os.listdir(self.inbound_path)):
            record, problem = self._judge(name)
            if record is None or record["assignment"] != self.coursedir.assignment_id:
                continue  # another assignment's, or not a submission at all
            if wanted and record["username"] != wanted:
                continue
            (flagged if problem else genuine).append({**record, "reason": problem})
        for record in flagged:
            self.log.error("Not collected: %s (%s). It stays in %s and is listed in %s: look at "
                           "it, then delete it from the exchange.", record["filename"],
                           record["reason"], self.inbound_path, self.flag_file)
        self._flag(flagged)
        self.src_records = [self._choose(group) for group in
                            groupby(genuine, lambda r: r["username"]).values()]

    def _duedate(self):
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                return gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                return None

    def _judge(self, name: str) -> tuple[dict | None, str]:
        """(the entry's record, why it cannot be collected — '' when it can)."""
        parts = name.rsplit("+", 3)
        if len(parts) < 3:
            return None, ""
        path = os.path.join(self.inbound_path, name)
        info = os.lstat(path)  # lstat: a link would show its target's owner
        record = {"username": parts[0], "assignment": parts[1], "filename": name,
                  "owner": _name_of(info.st_uid), "timestamp": None}
        try:
            record["timestamp"] = parse_utc(parts[2])
        except Exception:
            return record, f"its name holds no valid time ({parts[2]!r})"
        if not stat.S_ISDIR(info.st_mode):
            return record, "not a folder (a link or a file)"
        if record["owner"] != record["username"]:
            return record, f"submitted by {record['owner']}, in {record['username']}'s name"
        for folder, dirs, files in os.walk(path):
            for entry in dirs + files:
                inner = os.lstat(os.path.join(folder, entry))
                if not (stat.S_ISDIR(inner.st_mode) or stat.S_ISREG(inner.st_mode)):
                    return record, f"{entry!r} inside is a link or a special file"
                if inner.st_uid != info.st_uid:
                    return record, f"{entry!r} inside belongs to {_name_of(inner.st_uid)}"
        received = parse_utc(_utc(info.st_ctime))  # set by the kernel, not by the student
        claimed = [record["timestamp"]]
        stamp = os.path.join(path, "timestamp.txt")
        if os.path.isfile(stamp):
            try:
                claimed.append(parse_utc(Path(stamp).read_text().strip()))
            except Exception:
                return record, "its timestamp.txt holds no valid time"
        if min(claimed) < received - timedelta(seconds=self.clock_slack):
            return record, (f"its time says {min(claimed)}, but the exchange received it at "
                            f"{received} (a backdated submission?)")
        return record, ""

    def _choose(self, records: list[dict]) -> dict:
        """nbgrader's rule: the newest, or with before_duedate the newest on time."""
        records = self._sort_by_timestamp(records)
        if self.duedate is not None and self.before_duedate:
            on_time = [r for r in records if r["timestamp"] <= self.duedate]
            return (on_time or records)[0]
        return records[0]

    def _flag(self, flagged: list[dict]) -> None:
        path = Path(self.coursedir.root, self.flag_file)
        seen = set()
        if path.exists():
            with open(path, newline="") as f:
                seen = {row["exchange_file"] for row in csv.DictReader(f)}
        new = [r for r in flagged if r["filename"] not in seen]
        if not new:
            return
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if not seen:
                writer.writerow(FLAG_COLUMNS)
            for r in new:
                when = r["timestamp"].isoformat() if r["timestamp"] else ""
                writer.writerow([self.coursedir.assignment_id, r["username"], r["owner"], when,
                                 r["filename"], r["reason"]])


def _name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _utc(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
