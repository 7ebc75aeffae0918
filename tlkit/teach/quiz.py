""""Check your understanding" questions with immediate feedback, at the end of each lesson.

In JupyterLab, Colab or Binder a question shows as radio buttons with a *Check* button; the
feedback explains why an answer is right or wrong. Without widgets, call ``q.check("b")``.

Example::

    q = tlkit.quiz("Which layers hold the most generic features?",
                   options={"a": "the first ones", "b": "the last ones"}, answer="a",
                   explain="Early layers detect edges and textures, useful for any image.")
    q            # shows the question
    q.check("a") # or answer in code
"""
from __future__ import annotations

from typing import Mapping

__all__ = ["quiz", "Quiz"]


class Quiz:
    """One multiple-choice question; displays as a widget, ``check`` answers in code."""

    def __init__(self, question: str, options: Mapping[str, str], answer: str,
                 explain: str, wrong: Mapping[str, str] | None = None) -> None:
        if not isinstance(options, Mapping) or not options:
            raise TypeError("options must map letters to answers, e.g. "
                            "options={'a': 'the first layers', 'b': 'the last layers'}")
        options = {str(k): v for k, v in options.items()}  # 1, 2, 3 work as keys too
        if str(answer) not in options:
            raise ValueError(f"answer {answer!r} is not one of the options {list(options)}")
        self.question, self.options, self.answer = question, options, str(answer)
        self.explain, self.wrong = explain, {str(k): v for k, v in dict(wrong or {}).items()}

    def _option(self, choice) -> str | None:
        """``choice`` as one of the option keys: " A" and "a" both mean option a."""
        text = str(choice).strip()
        return next((k for k in self.options if k == text or k.lower() == text.lower()), None)

    def feedback(self, choice: str) -> str:
        """The text shown for ``choice``."""
        choice = self._option(choice) or choice
        if choice not in self.options:
            return f"Choose one of {', '.join(self.options)}."
        if choice == self.answer:
            return f"✔ Right. {self.explain}"
        hint = self.wrong.get(choice, "Look again at the section this question is about.")
        return f"✘ Not quite. {hint}"

    def check(self, choice: str) -> bool:
        """Print the feedback for ``choice``; True if it is right."""
        print(self.feedback(choice))
        return self._option(choice) == self.answer

    def __repr__(self) -> str:
        lines = [self.question] + [f"  {k}) {v}" for k, v in self.options.items()]
        return "\n".join(lines + ["(answer with .check('<letter>'))"])

    def _ipython_display_(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        labels = [(f"{k}) {v}", k) for k, v in self.options.items()]
        choice = w.RadioButtons(options=labels, value=None, layout=w.Layout(width="auto"))
        button = w.Button(description="Check", button_style="primary")
        result = w.HTML()

        def on_click(_):
            text = self.feedback(choice.value) if choice.value else "Pick an answer first."
            colour = "green" if choice.value == self.answer else "#b00"
            result.value = f"<span style='color:{colour}'>{text}</span>"

        button.on_click(on_click)
        display(w.VBox([w.HTML(f"<b>{self.question}</b>"), choice, button, result]))


def quiz(question: str, *, options: Mapping[str, str], answer: str, explain: str,
         wrong: Mapping[str, str] | None = None) -> Quiz:
    """A multiple-choice question with feedback; ``wrong`` maps a wrong option to a hint."""
    return Quiz(question, options, answer, explain, wrong)
