"""nbgrader configuration for the course's graded exercises (see docs/instructors.md).

solutions/<assignment>/ holds the source notebooks (solutions + hidden tests);
`nbgrader generate_assignment <assignment>` writes the student version to exercises/<assignment>/.
The autograde pipeline below is nbgrader's own with two additions from tlkit.grading.nbgrader_plugin
that make a plain `nbgrader autograde` safe against cheating code in a submission.
"""
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                    LimitOutput, SaveAutoGrades)

from tlkit.grading.nbgrader_plugin import ApplyTrustedChecks, SafeExecute, TrustedChecks

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "transfer-learning"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# Each cell may run this long in the kernel; an endless loop is interrupted, not waited out.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.TrustedChecks.timeout = 120
# Bounded output: a submission that prints without end cannot flood the gradebook or feedback.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 50

# A deleted or replaced test cell comes back from the gradebook's copy.
c.OverwriteCells.add_missing_cells = True

c.Autograde.autograde_preprocessors = [
    TrustedChecks,        # starts the checks in a separate process, in parallel with the kernel
    SafeExecute,          # nbgrader's Execute; a kernel the notebook kills ends the run, not the batch
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    ApplyTrustedChecks,   # test cells' outputs come from those checks, verified outside the kernel
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
