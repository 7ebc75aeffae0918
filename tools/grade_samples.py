"""Sample submissions for each assignment, and the autograded score each must get.

Each sample starts from the release and applies edits: fill in (parts of) the solution, add a
student's own cell, hand in an extra file. Beside the solution, the untouched release and typical
mistakes, they cover every class of exploit known to have beaten a notebook grader: patching
the checks, silencing errors, exiting or killing the grader, reading the solutions, the gradebook
or the test data, poisoning a shared cache, lying about a model's parameters, calling tlkit's
version of what a task asks you to write — and honest work that a careless grader penalises.
tools/grade_demo.py grades them; tests/test_grading.py expects exactly these scores.
"""
from __future__ import annotations

from typing import Callable

import nbformat

Edit = Callable[[nbformat.NotebookNode, nbformat.NotebookNode], "dict[str, str] | None"]


# --- building submissions: start from the release, fill in (parts of) the solution -----------

def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def solve(*, but: dict[str, str] | None = None) -> Edit:
    """Copy every solution from the source, replacing the cells named in ``but``."""
    def edit(nb, source):
        answers = {grade_id(c): c.source for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        answers.update(but or {})
        for cell in nb.cells:
            if grade_id(cell) in answers:
                cell.source = answers[grade_id(cell)]
    return edit


def add_cell(code: str, *, first: bool = False) -> Edit:
    """A new cell of the student's own, at the start (after the imports) or at the end."""
    def edit(nb, source):
        cell = nbformat.v4.new_code_cell(code)
        nb.cells.insert(3 if first else len(nb.cells), cell)
    return edit


def tamper_tests(how: str) -> Edit:
    """Replace every test cell's code with ``pass`` ("pass"), or delete the test cells ("delete")."""
    def edit(nb, source):
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                 and c.cell_type == "code"]
        for cell in tests:
            if how == "pass":
                cell.source = "pass"
            else:
                nb.cells.remove(cell)
    return edit


CHEAT_PATCH = """\
import math, unittest, numpy, torch, tlkit, tlkit.teach.selfcheck
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
unittest.TestCase.assertEqual = lambda *a, **k: None
tlkit.teach.selfcheck.check = lambda *a, **k: print("all tests passed")
"""
CHEAT_SILENCE = """\
import sys
get_ipython().showtraceback = lambda *a, **k: None
get_ipython()._showtraceback = lambda *a, **k: None
sys.excepthook = lambda *a: None
"""
CHEAT_SKIP = "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])"

# The cheats that apply to any assignment -> the score each must leave a submission with one
# mistake (ex01's sign error, worth 4 of 8): never more. Where the cheat stops the notebook
# before its functions exist (an exit, a killed grader, every later cell skipped), less: 0.
CHEATS: dict[str, tuple[list[Edit], float]] = {
    "cheat_patch_helpers": ([add_cell(CHEAT_PATCH, first=True)], 4),
    "cheat_silence_errors": ([add_cell(CHEAT_SILENCE, first=True)], 4),
    "cheat_skip_later_cells": ([add_cell(CHEAT_SKIP, first=True)], 0),
    "cheat_os_exit": ([add_cell("import os\nos._exit(0)", first=True)], 0),
    "cheat_sys_exit": ([add_cell("import sys\nsys.exit(0)", first=True)], 4),
    "cheat_endless_loop": ([add_cell("while True:\n    pass", first=True)], 4),  # interrupted; the notebook goes on
    "cheat_tests_pass": ([tamper_tests("pass")], 4),
    "cheat_tests_deleted": ([tamper_tests("delete")], 4),
    "cheat_kill_grader": ([add_cell("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
                                    first=True)], 0),
}


def hand_in(name: str, text: str) -> Edit:
    """An extra file handed in beside the notebook."""
    def edit(nb, source):
        return {name: text}
    return edit


# Exploits written against notebook graders (nbgrader's own exploit tests, otter-grader's,
# published ones), adapted to these exercises.
FAKE_TLKIT = """def __getattr__(name):
    return lambda *a, **k: print("all tests passed")
"""
READ_SOLUTIONS = """\
import json, pathlib
here = pathlib.Path.cwd()
for up in [here, *here.parents]:
    for path in up.glob("solutions/ex*/ex*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if "BEGIN SOLUTION" in "".join(cell["source"]):
                exec("".join(cell["source"]), globals())
"""
WRITE_GRADEBOOK = """\
import pathlib, sqlite3
here = pathlib.Path.cwd()
for up in [here, *here.parents]:
    for db in up.glob("gradebook.db"):
        with sqlite3.connect(db) as con:
            con.execute("UPDATE grade SET manual_score = 100")
"""
IMPORT_ANSWER_KEYS = """\
try:
    from tlgrade.ex01_sgd import reference
except ImportError:
    from tlkit.grading.ex01_sgd import _reference as reference
"""
DETACHED_PARAMETERS = """\
def build_classifier(num_classes):
    model = tlkit.get_backbone("efficientnet_lite0")   # the backbone left trainable...
    tlkit.replace_head(model, num_classes)
    class Lying(type(model)):                           # ...but reported frozen
        def named_parameters(self, *a, **k):
            for name, p in super().named_parameters(*a, **k):
                yield name, (p if name.startswith("head.") else p.detach())
        def parameters(self, *a, **k):
            return (p for _, p in self.named_parameters())
    model.__class__ = Lying
    return model"""
PREDICT_FROM_CALLER = """\
train_x, train_y = tlkit.extract_features(model, train, progress=False)
classifier = LogisticRegression(max_iter=2000).fit(train_x.numpy(), train_y.numpy())

def predict(images):
    import inspect
    for frame in inspect.stack():
        for value in frame.frame.f_locals.values():
            if isinstance(value, np.ndarray) and value.dtype.kind == "i" and len(value) == len(images):
                return value
    return np.zeros(len(images), dtype=int)"""
LOOKUP_TEST_SPLIT = """\
test = tlkit.load_dataset("faces", split="test", transform=transform)
test_x = torch.stack([test[i][0] for i in range(len(test))]).flatten(1)
test_y = np.array([test[i][1] for i in range(len(test))])

def predict(images):
    distance = torch.cdist(images.flatten(1), test_x)
    return test_y[distance.argmin(1).numpy()]"""
POISON_CACHE = """\
import pathlib
tlkit.extract_features(model, train, progress=False)
cache = pathlib.Path(os.environ.get("TLKIT_CACHE", pathlib.Path.home() / ".cache" / "tlkit"))
for path in cache.rglob("*.pt"):
    blob = torch.load(path)
    blob = {k: (torch.randn_like(v) if torch.is_tensor(v) and v.is_floating_point() else v)
            for k, v in blob.items()} if isinstance(blob, dict) else blob
    torch.save(blob, path)
"""
SLOW_CELL = "import time\ntime.sleep(SLOW_SECONDS)  # exploring: slow, but under the per-cell limit"
SLOW_SECONDS = 8  # three of them: over twice the tests' per-cell limit of 10 s, each under it

def mutate(source: str, old: str, new: str) -> str:
    """``source`` with one mistake put in (fails loudly if ``old`` is not there)."""
    assert old in source, old
    return source.replace(old, new)


_EX04_PREPARE = """def prepare(model, *, n, lr_backbone, lr_head):
    model.requires_grad_(False)
    for block in model.blocks[-n:]:
        block.requires_grad_(True)
    model.head.requires_grad_(True)
    head = list(model.head.parameters())
    body = [p for p in model.parameters() if p.requires_grad and not any(p is h for h in head)]
    return torch.optim.SGD([{"params": body, "lr": lr_backbone}, {"params": head, "lr": lr_head}], momentum=0.9)"""
_EX04_TRAIN = """def train_steps(model, optimizer, images, labels, *, steps):
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses"""

_EX06_POOL = """def mean_pool(vectors, mask):
    weights = mask.unsqueeze(-1).to(vectors.dtype)
    mean = (vectors * weights).sum(1) / weights.sum(1)
    return mean / mean.norm(dim=1, keepdim=True)"""
_EX06_PREDICT = """train_x = embed(train.texts).numpy()
classifier = LogisticRegression(max_iter=1000).fit(train_x, train.targets)

def predict(words):
    return classifier.predict(embed(words).numpy())"""
LOOKUP_LEXICON = """from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
analyzer = SentimentIntensityAnalyzer()

def predict(words):
    return np.array([int(analyzer.polarity_scores(w)["compound"] > 0) for w in words])"""
SPELLING_LOOKUP = """everything = tlkit.load_dataset("vader_words", split="train")   # every training word

def predict(words):
    out = []
    for w in words:      # the label of the training words that share the longest beginning
        common = [next((i for i, (a, b) in enumerate(zip(w, v)) if a != b), min(len(w), len(v)))
                  for v in everything.texts]
        best = max(common)
        votes = [t for c, t in zip(common, everything.targets) if c == best]
        out.append(int(np.mean(votes) > 0.5))
    return np.array(out)"""
LOOKUP_TEST_WORDS = """test = tlkit.load_dataset("vader_words", split="test")
label_of = dict(zip(test.texts, test.targets))

def predict(words):
    return np.array([label_of.get(w, 0) for w in words])"""

SIGN_MISTAKE = solve(but={"sgd_step": "def sgd_step(params, *, lr):\n    with torch.no_grad():\n"
                                      "        for p in params:\n            p += lr * p.grad"})

# assignment -> sample student -> (edits, the autograded score that student must get)
SAMPLES: dict[str, dict[str, tuple[list[Edit], float]]] = {
    "ex01_sgd_update": {
        "solution": ([solve()], 8),
        "blank": ([], 0),
        "mistake_sign": ([SIGN_MISTAKE], 4),
        "mistake_no_grad": ([solve(but={"sgd_step": "def sgd_step(params, *, lr):\n    for p in params:\n        p -= lr * p.grad"})], 4),
        "mistake_no_weight_decay": ([solve(but={"sgd_momentum_step": "def sgd_momentum_step(params, velocities, *, lr, momentum, weight_decay=0.0):\n    with torch.no_grad():\n        for p, v in zip(params, velocities):\n            v.mul_(momentum).add_(p.grad)\n            p -= lr * v"})], 6),
        "solution_then_os_exit": ([solve(), add_cell("import os\nos._exit(0)")], 0),
        "solution_silencing_errors": ([solve(), add_cell(CHEAT_SILENCE, first=True)], 8),
        **{f"{name}_over_mistake": ([SIGN_MISTAKE, *edits], score)
           for name, (edits, score) in CHEATS.items()},
        # A blank notebook that cheats scores 0.
        **{name: (CHEATS[name][0], 0) for name in ("cheat_patch_helpers", "cheat_silence_errors",
                                                    "cheat_tests_deleted", "cheat_kill_grader")},
        "cheat_fake_tlkit_package": ([hand_in("tlkit/__init__.py", FAKE_TLKIT)], 0),
        "cheat_import_answer_keys": ([add_cell(IMPORT_ANSWER_KEYS + "def sgd_step(params, *, lr): pass", first=True)], 0),
        "cheat_read_solutions": ([add_cell(READ_SOLUTIONS)], 0),
        "cheat_write_gradebook": ([add_cell(WRITE_GRADEBOOK, first=True)], 0),
        "cheat_calls_tlkit_sgd_step": ([solve(but={"sgd_step": "def sgd_step(params, *, lr):\n    tlkit.sgd_step(params, lr)"}), add_cell("import tlkit", first=True)], 4),
        "cheat_claims_to_be_tlkit": ([solve(but={"sgd_step": "__name__ = 'tlkit.learn.sgd'\ndef sgd_step(params, *, lr):\n    tlkit.sgd_step(params, lr)"}), add_cell("import tlkit", first=True)], 4),
        "solution_matplotlib_magic": ([solve(but={"sgd_step": "%matplotlib inline\ndef sgd_step(params, *, lr):\n    with torch.no_grad():\n        for p in params:\n            p -= lr * p.grad"})], 8),
        "solution_slow_exploration": ([solve(), *[add_cell(SLOW_CELL.replace("SLOW_SECONDS", str(SLOW_SECONDS))) for _ in range(3)]], 8),
    },
    "ex02_freeze_and_head": {
        "solution": ([solve()], 8),
        "blank": ([], 0),
        "mistake_head_frozen_too": ([solve(but={"build_classifier": "def build_classifier(num_classes):\n    model = tlkit.get_backbone('efficientnet_lite0')\n    tlkit.replace_head(model, num_classes)\n    model.requires_grad_(False)\n    return model"})], 5),
        "mistake_counts_everything": ([solve(but={"count_trainable": "def count_trainable(model):\n    return sum(p.numel() for p in model.parameters())"})], 6),
        "mistake_random_weights": ([solve(but={"build_classifier": "def build_classifier(num_classes):\n    model = tlkit.get_backbone('efficientnet_lite0', weights=None)\n    model.requires_grad_(False)\n    tlkit.replace_head(model, num_classes)\n    return model"})], 5),
        "cheat_silence_errors": (CHEATS["cheat_silence_errors"][0], 0),
        "cheat_detached_parameters": ([solve(but={"build_classifier": DETACHED_PARAMETERS})], 5),
        "cheat_head_only": ([solve(but={"build_classifier": "def build_classifier(num_classes):\n    model = torch.nn.Module()\n    model.head = torch.nn.Linear(3 * 64 * 64, num_classes)\n    model.forward = lambda x: model.head(x.flatten(1))\n    return model"})], 2),
        "cheat_calls_tlkit_freeze": ([solve(but={"build_classifier": "def build_classifier(num_classes):\n    model = tlkit.get_backbone('efficientnet_lite0')\n    tlkit.freeze(model)\n    tlkit.replace_head(model, num_classes)\n    return model"})], 2),
    },
    "ex03_feature_extraction": {
        "solution": ([solve()], 8),
        "blank": ([], 0),
        "mistake_labels_shuffled": ([solve(but={"predict": "train_x, train_y = tlkit.extract_features(model, train, progress=False)\nshuffled = np.random.default_rng(0).permutation(train_y.numpy())\nclassifier = LogisticRegression(max_iter=2000).fit(train_x.numpy(), shuffled)\n\ndef predict(images):\n    return classifier.predict(features(images))"})], 3),
        "cheat_patch_helpers": (CHEATS["cheat_patch_helpers"][0], 0),
        "cheat_predict_reads_caller": ([solve(but={"predict": PREDICT_FROM_CALLER})], 3),
        "cheat_lookup_test_split": ([solve(but={"predict": LOOKUP_TEST_SPLIT})], 3),
        # Graded before "solution" (students go in order): its poisoned cache must not reach it.
        "a_cheat_poison_cache": ([solve(), add_cell(POISON_CACHE, first=False)], 8),
    },
    "ex04_fine_tuning": {
        "solution": ([solve()], 10),
        "blank": ([], 0),
        "mistake_one_rate_for_all": ([solve(but={"prepare": mutate(_EX04_PREPARE, 'return torch.optim.SGD([{"params": body, "lr": lr_backbone}, {"params": head, "lr": lr_head}], momentum=0.9)', 'return torch.optim.SGD(body + head, lr=lr_head, momentum=0.9)')})], 7),
        "mistake_batchnorm_trains": ([solve(but={"train_steps": mutate(_EX04_TRAIN, "model.train()", "model.train()\n    tlkit.set_batchnorm(model, 'train')")})], 8),
        # Nothing trains, so neither "the loss falls" nor "batch norm kept" can be earned.
        "mistake_no_optimizer_step": ([solve(but={"train_steps": mutate(_EX04_TRAIN, "        optimizer.step()\n", "")})], 5),
        "cheat_silence_errors": (CHEATS["cheat_silence_errors"][0], 0),
        "cheat_train_does_nothing": ([solve(but={"train_steps": "def train_steps(model, optimizer, images, labels, *, steps):\n    return []"})], 5),
        "cheat_nudges_the_head": ([solve(but={"train_steps": "def train_steps(model, optimizer, images, labels, *, steps):\n    model.head.weight.data += 1\n    return []"})], 5),
        "cheat_calls_tlkit_unfreeze_last": ([solve(but={"prepare": mutate(_EX04_PREPARE, "    model.requires_grad_(False)\n    for block in model.blocks[-n:]:\n        block.requires_grad_(True)\n    model.head.requires_grad_(True)\n", "    tlkit.unfreeze_last(model, n)\n")})], 0),
        "solution_warns_on_stderr": ([solve(but={"train_steps": mutate(_EX04_TRAIN, "    model.train()\n", "    import sys, warnings\n    warnings.warn('a warning from honest code')\n    print('progress 0/5', file=sys.stderr)\n    model.train()\n")})], 10),
    },
    "ex06_text_transfer": {
        "solution": ([solve()], 10),
        "blank": ([], 0),
        # Pooling wrong (0 of 3), and so the similarities built on it (0 of 2: among 30
        # candidates a ranking by anything but cosine shows); the classifier still separates
        # the words (5).
        "mistake_padding_counted": ([solve(but={"mean_pool": mutate(_EX06_POOL, "(vectors * weights).sum(1) / weights.sum(1)", "vectors.mean(1)")})], 5),
        "mistake_not_normalised": ([solve(but={"mean_pool": mutate(_EX06_POOL, "return mean / mean.norm(dim=1, keepdim=True)", "return mean")})], 5),
        "mistake_labels_shuffled": ([solve(but={"predict": mutate(_EX06_PREDICT, "fit(train_x, train.targets)", "fit(train_x, np.random.default_rng(0).permutation(train.targets))")})], 5),
        "mistake_least_similar_first": ([solve(but={"most_similar": "def most_similar(word, candidates, n=3):\n    vectors = embed([word, *candidates])\n    similarity = vectors[1:] @ vectors[0]\n    return [candidates[i] for i in similarity.argsort()[:n].tolist()]"})], 8),
        "cheat_lookup_lexicon": ([solve(but={"predict": LOOKUP_LEXICON})], 5),
        "cheat_lookup_test_words": ([solve(but={"predict": LOOKUP_TEST_WORDS})], 5),
        # Held out by family, no test word is a training word with another ending.
        "cheat_spelling_lookup": ([solve(but={"predict": SPELLING_LOOKUP})], 5),
        "cheat_calls_encoder_pooling": ([solve(but={"mean_pool": "def mean_pool(vectors, mask):\n    return encoder.neck(vectors, mask.bool())"})], 0),
        "cheat_patch_helpers": (CHEATS["cheat_patch_helpers"][0], 0),
    },
    "ex05_choose_strategy": {
        "solution": ([solve()], 6),  # + the written answer, which waits for a human
        "blank": ([], 0),
        "mistake_domains_swapped": ([solve(but={"choose_strategy": "def choose_strategy(*, n_per_class, similar):\n    if n_per_class >= 1000:\n        return 'fine_tune_all'\n    return 'earlier_features' if similar else 'feature_extraction'"})], 2),
        "cheat_tests_deleted": (CHEATS["cheat_tests_deleted"][0], 0),
        "cheat_import_answer_keys": ([add_cell("try:\n    from tlgrade.ex05_strategy import rule as choose_strategy, QUIZ as answers\nexcept ImportError:\n    from tlkit.grading.ex05_strategy import rule as choose_strategy, QUIZ as answers")], 0),
    },
}


