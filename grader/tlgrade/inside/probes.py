"""Runs inside the sandbox, in the student's kernel, after the notebook's last cell.

Each probe calls the student's functions on the inputs the grader sent and returns plain
arrays; the grader judges them outside. Nothing here is secret: no answer, no seed of a hidden
check, no label. Models are read through ``nn.Module``'s own dictionaries, not through methods
a student's class could override.
"""
import json
import sys

import numpy as np
import torch

TensorBase = torch._C.TensorBase


def _walk(module, prefix="", seen=None):
    """(name, tensor, is_parameter) for every parameter and buffer, as state_dict names them."""
    seen = set() if seen is None else seen
    for kind, table in (("p", "_parameters"), ("b", "_buffers")):
        for name, tensor in object.__getattribute__(module, table).items():
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                yield prefix + name, tensor, kind == "p"
    for name, child in object.__getattribute__(module, "_modules").items():
        if child is not None:
            yield from _walk(child, f"{prefix}{name}.", seen)


def _parameters(model):
    return [(name, t) for name, t, is_param in _walk(model) if is_param]


def _values(tensor) -> np.ndarray:
    return TensorBase.detach(tensor).cpu().numpy().copy()


def _trainable(tensor) -> bool:
    return bool(TensorBase.requires_grad.__get__(tensor))


def _array(value, dtype=None) -> np.ndarray:
    if torch.is_tensor(value):
        value = _values(value)
    return np.asarray(value, dtype=dtype)


def fingerprint(values: np.ndarray) -> np.ndarray:
    flat = values.astype(np.float64).ravel()
    return np.array([flat.size, flat.sum(), (flat ** 2).sum(), flat[: 97].sum()])


def sgd(ns, x):
    n = sum(1 for k in x if k.startswith("param/"))
    params = [torch.tensor(x[f"param/{i}"], requires_grad=True) for i in range(n)]
    velocities = [torch.zeros_like(p) for p in params]
    ids = [id(p) for p in params]
    step = ns[str(x["function"])]
    for s in range(int(x["steps"])):
        for i, p in enumerate(params):
            p.grad = torch.tensor(x[f"grad/{s}/{i}"])
        if bool(x["velocity"]):
            step(params, velocities, lr=float(x["lr"]), momentum=float(x["momentum"]),
                 weight_decay=float(x["weight_decay"]))
        else:
            step(params, lr=float(x["lr"]))
    out = {f"param/{i}": _values(p) for i, p in enumerate(params)}
    out["in_place"] = np.array([id(p) == i and p.is_leaf and _trainable(p)
                                for p, i in zip(params, ids)])
    return out


def count(ns, x):
    from tlkit.teach.exercises import small_mlp

    return {"count": np.array(int(ns["count_trainable"](small_mlp(int(x["seed"])))))}


def classifier(ns, x):
    model = ns["build_classifier"](int(x["num_classes"]))
    named = _parameters(model)
    out = {"names": np.array([n for n, _ in named]),
           "trainable": np.array([_trainable(p) for _, p in named])}
    out.update({f"print/{n}": fingerprint(_values(p)) for n, p in named})
    model.eval()
    with torch.no_grad():
        out["logits_shape"] = np.array(tuple(model(torch.from_numpy(x["images"])).shape))
    return out


def features(ns, x):
    return {"features": _array(ns["features"](torch.from_numpy(x["images"])), np.float32)}


def predict(ns, x):
    return {"predicted": _array(ns["predict"](torch.from_numpy(x["images"]))).astype(np.int64).ravel()}


_PRISTINE = []


def _model(x):
    """Lite0 with a 2-way head holding the grader's starting weights (built once, then copied)."""
    import copy

    import tlkit.models.factory as factory
    import tlkit.models.surgery as surgery

    if not _PRISTINE:
        # The policy ex04 practises, as in tlkit.teach.exercises.finetune_model (the grader's
        # reference): frozen blocks' batch norm in eval mode, the unfrozen blocks' learning.
        lite0 = surgery.set_batchnorm(factory.get_backbone("efficientnet_lite0"), "frozen")
        _PRISTINE.append(surgery.replace_head(lite0, 2))
    model = copy.deepcopy(_PRISTINE[0])
    with torch.no_grad():
        for name, tensor in _parameters(model.head):
            tensor.copy_(torch.from_numpy(x[f"head/{name}"]))
    return model


def prepare(ns, x):
    model = _model(x)
    optimizer = ns["prepare"](model, n=int(x["n"]), lr_backbone=float(x["lr_backbone"]),
                              lr_head=float(x["lr_head"]))
    named = _parameters(model)
    group_of = {id(p): -1 for _, p in named}
    for g, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            if id(p) in group_of:
                group_of[id(p)] = g
    return {"names": np.array([n for n, _ in named]),
            "group_of": np.array([group_of[id(p)] for _, p in named]),
            "trainable": np.array([_trainable(p) for _, p in named]),
            "group_lr": np.array([float(g["lr"]) for g in optimizer.param_groups], dtype=float)}


def train(ns, x):
    model = _model(x)
    optimizer = ns["prepare"](model, n=1, lr_backbone=float(x["lr_backbone"]),
                              lr_head=float(x["lr_head"]))
    ns["train_steps"](model, optimizer, torch.from_numpy(x["images"]),
                      torch.from_numpy(x["labels"]), steps=int(x["steps"]))
    return {f"after/{n}": _values(t) for n, t, _ in _walk(model)}


def strategy(ns, x):
    answers = [str(ns["choose_strategy"](n_per_class=int(n), similar=bool(s)))
               for n, s in zip(x["n_per_class"], x["similar"])]
    return {"answers": np.array(answers)}


def quiz(ns, x):
    answers = ns["answers"]
    if not isinstance(answers, dict):
        raise TypeError("answers must be a dictionary, e.g. {'q1': 'a', 'q2': 'b', 'q3': 'c'}")
    questions = [str(q) for q in x["questions"]]
    return {"questions": np.array(questions),
            "answers": np.array([str(answers.get(q, "")).strip().lower()[:8] for q in questions])}


def pool(ns, x):
    pooled = ns["mean_pool"](torch.from_numpy(x["vectors"]), torch.from_numpy(x["mask"]))
    return {"pooled": _array(pooled, np.float64)}


def predict_words(ns, x):
    words = [str(w) for w in x["words"]]
    return {"predicted": _array(ns["predict"](words)).astype(np.int64).ravel()}


def similar(ns, x):
    found = ns["most_similar"](str(x["word"]), [str(c) for c in x["candidates"]], n=int(x["n"]))
    return {"similar": np.array([str(w) for w in list(found)[:64]])}


def run(job_path, ns):
    """Every task of the job on the kernel's namespace ``ns``; writes one .npz of results."""
    from tlkit.teach.selfcheck import explain

    with open(job_path) as f:
        job = json.load(f)
    arrays, errors, done = {}, {}, {}
    for task in job["tasks"]:
        key = task["key"]
        missing = [name for name in task["needs"] if name not in ns]
        if missing:
            errors[key] = f"`{missing[0]}` is not defined: the cell that defines it did not run."
            continue
        try:
            if task["share"] not in done:
                with np.load(task["inputs"], allow_pickle=False) as data:
                    inputs = {k: data[k] for k in data.files}
                done[task["share"]] = globals()[task["probe"]](ns, inputs)
            for name, value in done[task["share"]].items():
                arrays[f"{key}//{name}"] = np.asarray(value)
        except BaseException as error:  # noqa: BLE001 — SystemExit from student code too
            errors[key] = explain(error)
    np.savez(job["result"], __errors__=np.array(json.dumps(errors)), **arrays)
    sys.stdout.write(f"probes done: {len(job['tasks'])} tasks, {len(errors)} errors\n")
