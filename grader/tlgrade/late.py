"""A late penalty per started day: nbgrader's ``none`` / ``zero`` lie at the two ends.

Each day (or part of one) past the due date takes ``percent_per_day`` of the score, down to
zero; the score minus that penalty is what ``nbgrader export`` reports. A grace period covers
a clock a few seconds off.

Example (nbgrader_config.py)::

    c.AssignLatePenalties.plugin_class = "tlgrade.late.PenaltyPerDay"
    c.PenaltyPerDay.percent_per_day = 10
"""
from __future__ import annotations

import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

__all__ = ["PenaltyPerDay"]


class PenaltyPerDay(LateSubmissionPlugin):
    percent_per_day = Float(10.0, help="Percent of the score taken per started day late.").tag(config=True)
    grace_seconds = Float(0.0, help="Lateness forgiven (a clock off by seconds).").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float,
                                total_seconds_late: float) -> float:
        if total_seconds_late <= self.grace_seconds:
            return 0.0
        days = math.ceil(total_seconds_late / 86400)
        penalty = min(score, score * self.percent_per_day / 100 * days)
        self.log.info("%s: %d day(s) late, %g%% a day: %g of %g points off", student_id, days,
                      self.percent_per_day, penalty, score)
        return penalty
