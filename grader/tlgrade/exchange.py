"""Collect that refuses submissions made in somebody else's name, and flags them.

nbgrader's exchange names each submission ``<student>+<assignment>+<timestamp>+<random>``, and
``nbgrader submit --student=bob`` lets alice write bob's name there. nbgrader's collect only
warns (``check_owner``), then takes the newest submission per name, so alice's would replace
bob's own. Here a submission is collected only when the Unix account that owns it is the
student it names. Any other is left in the exchange as evidence, kept out of the gradebook,
and written to ``flagged_submissions.csv`` in the course folder for the instructor.

Example (nbgrader_config.py)::

    c.ExchangeFactory.collect = "tlgrade.exchange.OwnerCheckedCollect"
"""
from __future__ import annotations

import csv
import glob
import os
import pwd
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from traitlets import Unicode

__all__ = ["OwnerCheckedCollect", "FLAG_COLUMNS"]

FLAG_COLUMNS = ["assignment", "claimed_student", "owner", "timestamp", "exchange_file"]


class OwnerCheckedCollect(ExchangeCollect):
    flag_file = Unicode("flagged_submissions.csv",
                        help="Where refused submissions are listed (relative: in the course "
                             "folder).").tag(config=True)

    def init_src(self):
        super().init_src()  # nbgrader's checks and the due date; its choice is redone below
        student = self.coursedir.student_id or "*"
        pattern = os.path.join(self.inbound_path, f"{student}+{self.coursedir.assignment_id}+*")
        records = [self._path_to_record(path) for path in glob.glob(pattern)]
        genuine, forged = [], []
        for record in records:
            owner = _owner(os.path.join(self.inbound_path, record["filename"]))
            (genuine if owner == record["username"] else forged).append({**record, "owner": owner})
        for record in forged:
            self.log.error("Not collected: %s names %s but was submitted by %s (listed in %s)",
                           record["filename"], record["username"], record["owner"],
                           self.flag_file)
        self._flag(forged)
        self.src_records = [self._choose(group) for group in
                            groupby(genuine, lambda r: r["username"]).values()]

    def _choose(self, records: list[dict]) -> dict:
        """nbgrader's rule: the newest, or with before_duedate the newest on time."""
        records = self._sort_by_timestamp(records)
        if self.duedate is not None and self.before_duedate:
            on_time = [r for r in records if r["timestamp"] <= self.duedate]
            return (on_time or records)[0]
        return records[0]

    def _flag(self, forged: list[dict]) -> None:
        path = Path(CourseDirectory(config=self.config).root, self.flag_file)
        seen = set()
        if path.exists():
            with open(path, newline="") as f:
                seen = {row["exchange_file"] for row in csv.DictReader(f)}
        new = [r for r in forged if r["filename"] not in seen]
        if not new:
            return
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if not seen:
                writer.writerow(FLAG_COLUMNS)
            for r in new:
                writer.writerow([self.coursedir.assignment_id, r["username"], r["owner"],
                                 r["timestamp"].isoformat(), r["filename"]])


def _owner(path: str) -> str:
    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except KeyError:
        return f"uid {os.stat(path).st_uid}"
