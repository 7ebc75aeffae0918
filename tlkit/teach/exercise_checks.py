"""The exercises' self-checks, one function per task: run the student's code on the public
problem and judge it by a property (frozen? the loss falls?) or by a salted hash (``keyed``).

``selfcheck.check`` looks checks up here; see there for how they are used.
"""
from __future__ import annotations

import numpy as np

from . import exercises as ex
from .selfcheck import ACCURACY_BAR, TEXT_ACCURACY_BAR, CheckFailed, keyed

__all__ = ["CHECKS"]


def _sgd(ns: dict, check_id: str) -> str:
    import torch

    momentum = check_id != "ex01.sgd_step"
    problem = ex.sgd_problem(0, momentum=momentum, weight_decay=check_id == "ex01.weight_decay")
    params = [torch.tensor(p, requires_grad=True) for p in problem["params"]]
    velocities = [torch.zeros_like(p) for p in params]
    steps = ex.STEPS if momentum else 1
    for grads in problem["grads"][:steps]:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        if momentum:
            ns["sgd_momentum_step"](params, velocities, lr=problem["lr"],
                                    momentum=problem["momentum"],
                                    weight_decay=problem["weight_decay"])
        else:
            ns["sgd_step"](params, lr=problem["lr"])
    if not all(p.is_leaf and p.requires_grad for p in params):
        raise CheckFailed("update each parameter in place (`p -= …` inside `torch.no_grad()`): "
                          "the optimizer holds these very tensors, so new ones would be lost.")
    got = [p.detach().numpy() for p in params]
    if all(np.allclose(a, b, atol=1e-7) for a, b in zip(got, problem["params"])):
        raise CheckFailed("the parameters did not change.")
    return keyed(check_id, got, f"{len(got)} parameters right after {steps} step(s)")


def _count(ns: dict, check_id: str) -> str:
    model = ex.small_mlp(0)
    got = int(ns["count_trainable"](model))
    if got == sum(p.numel() for p in model.parameters()):
        raise CheckFailed("count_trainable counted every parameter; only those with "
                          "requires_grad=True train.")
    return keyed(check_id, [got], f"{got} trainable values")


def _classifier(ns: dict, check_id: str) -> str:
    import torch

    from ..models.factory import get_backbone

    k = ex.num_classes(0)
    model = ns["build_classifier"](k)
    named = list(model.named_parameters())
    head = [name.startswith("head.") for name, _ in named]
    if not any(head):
        raise CheckFailed("the model has no `head`: use a tlkit Backbone and replace its head.")
    if check_id == "ex02.frozen":
        reference = next(get_backbone("efficientnet_lite0").parameters())
        if not torch.equal(named[0][1].detach(), reference.detach()):
            raise CheckFailed("the backbone's weights are not Lite0's ImageNet weights.")
        loose = [name for (name, p), h in zip(named, head) if p.requires_grad and not h]
        if loose:
            raise CheckFailed(f"{len(loose)} backbone parameters still train (e.g. {loose[0]}).")
        return "every backbone parameter frozen, ImageNet weights kept"
    if not all(p.requires_grad for (_, p), h in zip(named, head) if h):
        raise CheckFailed("the new head is frozen too: it must train.")
    with torch.no_grad():
        shape = tuple(model.eval()(torch.from_numpy(ex.random_images(0, n=2, size=64))).shape)
    if shape != (2, k):
        raise CheckFailed(f"build_classifier({k}) gives outputs of shape {shape} for 2 images.")
    return f"a trainable head with {k} outputs"


def _features(ns: dict, check_id: str) -> str:
    import torch

    from ..models.factory import get_backbone

    images = torch.from_numpy(ex.random_images(0))
    got = ns["features"](images)
    got = np.asarray(got.detach().cpu() if torch.is_tensor(got) else got, dtype=np.float32)
    with torch.no_grad():
        want = get_backbone("efficientnet_lite0").eval().forward_features(images).numpy()
    if got.shape != want.shape:
        raise CheckFailed(f"features of 3 images have shape {got.shape}; expected {want.shape}.")
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise CheckFailed("the features differ from the frozen, pretrained Lite0's.")
    return f"pooled features {want.shape} match the frozen backbone"


def _accuracy(ns: dict, check_id: str) -> str:
    import torch

    from ..data.catalog import load_dataset
    from ..models.factory import backbone_weights

    test = load_dataset("faces", split="test",
                        transform=backbone_weights("efficientnet_lite0").transforms(size=ex.FACES_SIZE))
    labels = np.array([test[i][1] for i in range(len(test))])
    chosen = ex.faces_test_draw(0, labels)
    predicted = ns["predict"](torch.stack([test[int(i)][0] for i in chosen]))
    predicted = np.asarray(predicted.cpu() if torch.is_tensor(predicted) else predicted).ravel()
    accuracy = float((predicted.astype(np.int64) == labels[chosen]).mean())
    if accuracy < ACCURACY_BAR:
        raise CheckFailed(f"accuracy {accuracy:.2f} on {len(chosen)} test images; the bar is "
                          f"{ACCURACY_BAR}.")
    return f"accuracy {accuracy:.2f} on {len(chosen)} test images (bar {ACCURACY_BAR})"


def _prepared(ns: dict, *, n: int, seed: int = 0):
    s = ex.finetune_setting(seed)
    model = ex.finetune_model(seed)
    optimizer = ns["prepare"](model, n=n, lr_backbone=s["lr_backbone"], lr_head=s["lr_head"])
    return model, optimizer, s


def _unfreeze(ns: dict, check_id: str) -> str:
    n = ex.finetune_setting(0)["n"]
    model, _, _ = _prepared(ns, n=n)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    return keyed(check_id, names, f"n={n}: exactly the right {len(names)} tensors train")


def _groups(ns: dict, check_id: str) -> str:
    model, optimizer, s = _prepared(ns, n=ex.finetune_setting(0)["n"])
    names = {id(p): name for name, p in model.named_parameters()}
    seen = set()
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names.get(id(p), "?")
            if not p.requires_grad:
                raise CheckFailed(f"{name} is frozen but was given to the optimizer.")
            want = s["lr_head"] if name.startswith("head.") else s["lr_backbone"]
            if not np.isclose(group["lr"], want):
                raise CheckFailed(f"{name} has learning rate {group['lr']:g}, expected {want:g}: "
                                  "the head gets lr_head, the unfrozen blocks lr_backbone.")
            seen.add(name)
    lacking = [name for name, p in model.named_parameters() if p.requires_grad and name not in seen]
    if lacking:
        raise CheckFailed(f"{lacking[0]} should train but is in no parameter group.")
    return f"{len(optimizer.param_groups)} groups with the right learning rates"


def _eval_loss(model, images, labels) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(images), labels))


def _training(ns: dict, check_id: str) -> str:
    model, optimizer, _ = _prepared(ns, n=1)
    images, labels = ex.finetune_batch(0)
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = _eval_loss(model, images, labels)
    model.train()
    ns["train_steps"](model, optimizer, images, labels, steps=5)
    if model.head.weight.detach().equal(before_state["head.weight"]):
        # Unmoved statistics prove nothing when nothing trained; nor does a loss moved by them.
        raise CheckFailed("the head's weights did not change: does each step call "
                          "optimizer.step() after loss.backward()?")
    if check_id == "ex04.batchnorm":
        last = f"blocks.{len(model.blocks) - 1}."
        moved = [k for k, v in model.state_dict().items() if "running_" in k
                 and not k.startswith(last) and not v.equal(before_state[k])]
        if moved:
            raise CheckFailed(f"{len(moved)} batch-norm statistics of frozen blocks changed "
                              f"(e.g. {moved[0]}): keep their batch-norm layers in eval mode.")
        return "running statistics of frozen blocks unchanged"
    after = _eval_loss(model, images, labels)
    if not after < 0.9 * before:
        raise CheckFailed(f"after 5 steps the loss went from {before:.3f} to {after:.3f}: each "
                          "step needs zero_grad, forward, loss, backward, optimizer.step().")
    return f"loss {before:.3f} → {after:.3f} after 5 steps"


def _strategy(ns: dict, check_id: str) -> str:
    answers = [str(ns["choose_strategy"](n_per_class=n, similar=s))
               for n, s in ex.strategy_scenarios(0)]
    return keyed(check_id, answers, f"{len(answers)} scenarios answered like the table")


def _quiz(ns: dict, check_id: str) -> str:
    # No key, not even hashed: with three options a question's hash gives its answer away in
    # three tries. The self-check says whether the answers are well formed; the grader marks them.
    answers = ns["answers"]
    if not isinstance(answers, dict):
        raise CheckFailed("answers must be a dictionary, e.g. {'q1': 'a', 'q2': 'b', 'q3': 'c'}.")
    for question, options in ex.QUIZ_OPTIONS.items():
        letter = str(answers.get(question, "")).strip().lower()
        if letter not in options:
            raise CheckFailed(f"{question}: answer with one of the letters {', '.join(options)}.")
    return f"{len(ex.QUIZ_OPTIONS)} answers given; the grader marks them"


def _pool(ns: dict, check_id: str) -> str:
    import torch

    problem = ex.pooling_problem(0)
    vectors, mask = problem["vectors"], problem["mask"]
    got = ns["mean_pool"](torch.from_numpy(vectors), torch.from_numpy(mask))
    got = np.asarray(got.detach().cpu() if torch.is_tensor(got) else got, dtype=np.float32)
    mean = (vectors * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    want = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    if got.shape != want.shape:
        raise CheckFailed(f"mean_pool of {vectors.shape} vectors gave shape {got.shape}; "
                          f"expected {want.shape}: one vector per text.")
    if not np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4):
        raise CheckFailed("the vectors do not have length 1: divide each by its norm.")
    if not np.allclose(got, want, atol=1e-4):
        raise CheckFailed("not the mean of the real tokens: leave out the padded positions "
                          "(mask 0) from the sum and from the count.")
    return f"{len(want)} texts pooled over their real tokens, length 1"


def _words_accuracy(ns: dict, check_id: str) -> str:
    from ..data.catalog import load_dataset

    test = load_dataset("vader_words", split="test")
    chosen = ex.words_test_draw(0, np.array(test.targets))
    words = [test.texts[int(i)] for i in chosen]
    predicted = np.asarray(ns["predict"](words)).ravel().astype(np.int64)
    accuracy = float((predicted == np.array(test.targets)[chosen]).mean())
    if accuracy < TEXT_ACCURACY_BAR:
        raise CheckFailed(f"accuracy {accuracy:.2f} on {len(words)} held-out words; the bar is "
                          f"{TEXT_ACCURACY_BAR}.")
    return f"accuracy {accuracy:.2f} on {len(words)} held-out words (bar {TEXT_ACCURACY_BAR})"


def _similar(ns: dict, check_id: str) -> str:
    from ..data.catalog import load_dataset
    from ..models.text import get_text_encoder

    problem = ex.similarity_problem(0, load_dataset("vader_words", split="train").texts)
    got = [str(w) for w in ns["most_similar"](problem["word"], problem["candidates"],
                                              n=problem["n"])]
    e = get_text_encoder().encode([problem["word"], *problem["candidates"]])
    sims = dict(zip(problem["candidates"], (e[1:] @ e[0]).tolist()))
    best = sorted(sims.values(), reverse=True)[:problem["n"]]
    if len(got) != problem["n"] or any(w not in sims for w in got):
        raise CheckFailed(f"most_similar must return {problem['n']} of the candidates, got {got}.")
    if not np.allclose([sims[w] for w in got], best, atol=1e-4):
        raise CheckFailed("not the most similar candidates, most similar first: rank them by "
                          "cosine similarity to the word.")
    return f"the {problem['n']} nearest of {len(sims)} candidates, in order"


CHECKS = {
    "ex01.sgd_step": (("sgd_step",), _sgd),
    "ex01.momentum": (("sgd_momentum_step",), _sgd),
    "ex01.weight_decay": (("sgd_momentum_step",), _sgd),
    "ex02.count_trainable": (("count_trainable",), _count),
    "ex02.frozen": (("build_classifier",), _classifier),
    "ex02.head": (("build_classifier",), _classifier),
    "ex03.features": (("features",), _features),
    "ex03.accuracy": (("predict",), _accuracy),
    "ex04.unfreeze": (("prepare",), _unfreeze),
    "ex04.groups": (("prepare",), _groups),
    "ex04.batchnorm": (("prepare", "train_steps"), _training),
    "ex04.loss_falls": (("prepare", "train_steps"), _training),
    "ex05.choose_strategy": (("choose_strategy",), _strategy),
    "ex05.quiz": (("answers",), _quiz),
    "ex06.pool": (("mean_pool",), _pool),
    "ex06.accuracy": (("predict",), _words_accuracy),
    "ex06.similar": (("most_similar",), _similar),
}
