"""Grades in the shape a learning-management system imports: Canvas and Moodle CSV.

``nbgrader export`` writes one row per student and assignment; an LMS wants one row per
student and one column per assignment, with the late penalty already taken off.

- **Canvas** (Grades → Import): columns ``Student, ID, SIS User ID, SIS Login ID, Section``,
  then one per assignment, and a ``Points Possible`` row. Canvas finds each student by ``ID``
  (their Canvas user id: nbgrader's ``lms_user_id``, ``nbgrader db student add alice
  --lms-user-id=…``) or by ``SIS Login ID`` (nbgrader's student id, which is their login).
  A column whose name is not yet an assignment there becomes a new one.
- **Moodle** (Grades → Import → CSV file): ``username``, ``email``, then one column per
  assignment; at import, map ``username`` to the user and each column to its grade item.

Missing submissions are 0, as in nbgrader's own export. Example::

    nbgrader export --exporter=tlgrade.export.CanvasExport --to canvas.csv
    nbgrader export --exporter=tlgrade.export.MoodleExport --to moodle.csv
"""
from __future__ import annotations

import csv

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

__all__ = ["CanvasExport", "MoodleExport", "final_scores"]


def final_scores(gradebook: Gradebook, *, assignments: list[str] = (),
                 students: list[str] = ()) -> tuple[list, list, dict]:
    """(assignments, students, {(student id, assignment): score after the late penalty})."""
    chosen = [a for a in gradebook.assignments if not assignments or a.name in assignments]
    people = sorted((s for s in gradebook.students if not students or s.id in students),
                    key=lambda s: s.id)
    scores = {}
    for assignment in chosen:
        for student in people:
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                scores[student.id, assignment.name] = 0.0
            else:
                scores[student.id, assignment.name] = max(
                    0.0, submission.score - submission.late_submission_penalty)
    return chosen, people, scores


class _LmsExport(ExportPlugin):
    default_file = "grades.csv"

    def export(self, gradebook: Gradebook) -> None:
        chosen, people, scores = final_scores(
            gradebook, assignments=[str(a) for a in self.assignment],
            students=[str(s) for s in self.student])
        path = self.to or self.default_file
        self.log.info("Exporting %d students × %d assignments to %s", len(people), len(chosen), path)
        with open(path, "w", newline="") as f:
            self.write(csv.writer(f), chosen, people, scores)


class CanvasExport(_LmsExport):
    default_file = "canvas.csv"

    def write(self, writer, chosen, people, scores) -> None:
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                         *[a.name for a in chosen]])
        writer.writerow(["Points Possible", "", "", "", "", *[f"{a.max_score:g}" for a in chosen]])
        for s in people:
            name = ", ".join(n for n in (s.last_name, s.first_name) if n) or s.id
            writer.writerow([name, s.lms_user_id or "", "", s.id, "",
                             *[f"{scores[s.id, a.name]:g}" for a in chosen]])


class MoodleExport(_LmsExport):
    default_file = "moodle.csv"

    def write(self, writer, chosen, people, scores) -> None:
        writer.writerow(["username", "email", *[a.name for a in chosen]])
        for s in people:
            writer.writerow([s.id, s.email or "", *[f"{scores[s.id, a.name]:g}" for a in chosen]])
