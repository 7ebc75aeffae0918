"""nbgrader configuration for the course's graded exercises (see docs/instructors.md).

solutions/<assignment>/ holds the source notebooks (solutions + hidden tests);
`nbgrader generate_assignment <assignment>` writes the student version to exercises/<assignment>/.
Grading is nbgrader's own pipeline with the instructor-side package tlgrade (grader/) in it:
each submission runs in a bubblewrap sandbox, and its checks are verified outside it.
"""
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests,
                                    ClearMarkScheme, ClearOutput, ClearSolutions,
                                    ComputeChecksums, IgnorePattern, IncludeHeaderFooter,
                                    InstantiateTests, LimitOutput, LockCells, SaveAutoGrades,
                                    SaveCells)

from tlgrade.plugin import ApplyTrustedChecks, EmbedCourseCode, SandboxedExecute

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "transfer-learning"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# The course secret (python -m tlgrade secret ~/.tlgrade/secret): hidden inputs per student and
# a variant per student. Without one, everybody gets the public variant.
c.CourseSecret.path = ""

# Each cell may run this long; an endless loop is interrupted and the notebook goes on.
c.SandboxedExecute.timeout = 60
# Bounded output: a submission that prints without end cannot flood the gradebook or feedback.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 50

# A deleted or replaced test cell comes back from the gradebook's copy.
c.OverwriteCells.add_missing_cells = True

# nbgrader's release pipeline, with the course code written in first (given a secret).
c.GenerateAssignment.preprocessors = [
    EmbedCourseCode, IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions, ClearOutput,
    CheckCellMetadata, ComputeChecksums, SaveCells, ClearHiddenTests, ClearMarkScheme,
    ComputeChecksums, CheckCellMetadata,
]

c.Autograde.autograde_preprocessors = [
    SandboxedExecute,     # the notebook and its checks run in the sandbox; verified out here
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    ApplyTrustedChecks,   # test cells' outputs come from those verdicts, nothing the kernel said
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Hidden tests and the graders' rubrics (mark schemes) stay out of the feedback students get
# back (nbgrader #917); the formgrader shows the rubric beside each answer.
c.GenerateFeedback.preprocessors = [ClearHiddenTests, ClearMarkScheme,
                                    "nbgrader.preprocessors.GetGrades",
                                    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]

# Late work: 10 % of the score off per started day past the due date (`nbgrader db assignment
# add NAME --duedate=...`); nbgrader export then reports the score less that penalty.
c.AssignLatePenalties.plugin_class = "tlgrade.late.PenaltyPerDay"
c.PenaltyPerDay.percent_per_day = 10

# A submission is collected only from the account it names: one made as somebody else
# (`nbgrader submit --student=other`) is refused and listed in flagged_submissions.csv.
c.ExchangeFactory.collect = "tlgrade.exchange.OwnerCheckedCollect"
# The exchange every student can reach (nbgrader's default: /srv/nbgrader/exchange).
# c.Exchange.root = "/srv/nbgrader/exchange"
