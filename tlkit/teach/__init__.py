"""Teaching: the lessons' set-up cell, plots, widgets, quizzes, measurements, ``tlkit doctor``
and the demo. The top floor: it may use every layer below, and nothing below uses it.
"""
