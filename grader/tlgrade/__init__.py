"""tlgrade — the instructor's side of the course: trusted, sandboxed grading with nbgrader.

Not part of tlkit, never installed by students. The pieces, in the order a grade is made:

    secret    the course secret: hidden seeds and per-student variants come from it
    checks    a check = inputs (here) + probe (in the sandbox) + verify (here)
    ex01_sgd … ex05_strategy   each exercise's inputs, references and answer key
    sandbox   bubblewrap, an unprivileged user, resource limits
    grade     one notebook: run it in the sandbox with the probes, verify outside
    plugin    the nbgrader preprocessors that put all this into `nbgrader autograde`
    answers   the salted hashes tlkit's self-checks compare with

and around it, for a class:

    exchange  collect only what the submitting account may hand in; flag the rest
    late      a late penalty per started day
    parallel  autograde a class in parallel shards, merged into the gradebook
    export    grades for Canvas and Moodle

Example::

    from tlgrade.grade import grade_notebook
    from tlgrade.sandbox import Sandbox
"""
__version__ = "0.1.0"
