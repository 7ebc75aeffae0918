"""Checks for ex01_sgd_update: the SGD step by hand, then momentum and weight decay.

The student writes ``sgd_step(params, *, lr)`` and
``sgd_momentum_step(params, velocities, *, lr, momentum, weight_decay)``, both updating tensors
in place from their ``.grad`` (PyTorch's convention: ``v ← μ·v + (g + λ·w)``, ``w ← w − α·v``).
"""
from __future__ import annotations

import numpy as np
import torch

from . import Arrays, Check, CheckFailed, register

STEPS = 3  # momentum only shows after more than one step


def _problem(seed: int, *, momentum: bool, weight_decay: bool) -> dict:
    """Random shapes, values, gradients and hyper-parameters: the same on both sides."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(rng.integers(1, 5, size=rng.integers(1, 3))) for _ in range(rng.integers(2, 4))]
    return {
        "params": [rng.normal(size=s).astype(np.float32) for s in shapes],
        "grads": [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(STEPS)],
        "lr": float(rng.uniform(0.05, 0.5)),
        "momentum": float(rng.uniform(0.5, 0.95)) if momentum else 0.0,
        "weight_decay": float(rng.uniform(0.01, 0.2)) if weight_decay else 0.0,
    }


def _run(step, problem: dict, *, steps: int, with_velocity: bool) -> Arrays:
    params = [torch.tensor(p, requires_grad=True) for p in problem["params"]]
    velocities = [torch.zeros_like(p) for p in params]
    ids = [id(p) for p in params]
    for grads in problem["grads"][:steps]:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        if with_velocity:
            step(params, velocities, lr=problem["lr"], momentum=problem["momentum"],
                 weight_decay=problem["weight_decay"])
        else:
            step(params, lr=problem["lr"])
    out = {f"p{i}": p.detach().numpy().copy() for i, p in enumerate(params)}
    out["in_place"] = np.array([id(p) == i and p.is_leaf and p.requires_grad
                                for p, i in zip(params, ids)])
    return out


def _reference(problem: dict, *, steps: int) -> list[np.ndarray]:
    params = [p.astype(np.float64) for p in problem["params"]]
    velocities = [np.zeros_like(p) for p in params]
    for grads in problem["grads"][:steps]:
        for i, g in enumerate(grads):
            d = g + problem["weight_decay"] * params[i]
            velocities[i] = problem["momentum"] * velocities[i] + d
            params[i] = params[i] - problem["lr"] * velocities[i]
    return params


def _compare(arrays: Arrays, problem: dict, *, steps: int, what: str) -> str:
    if not arrays["in_place"].all():
        raise CheckFailed("update each parameter in place (`p -= …` inside `torch.no_grad()`): "
                          "the optimizer holds these very tensors, so new ones would be lost.")
    expected = _reference(problem, steps=steps)
    start = problem["params"]
    for i, want in enumerate(expected):
        got = arrays[f"p{i}"].astype(np.float64)
        if got.shape != want.shape:
            raise CheckFailed(f"parameter {i} changed shape from {want.shape} to {got.shape}.")
        if np.allclose(got, want, rtol=1e-4, atol=1e-5):
            continue
        if np.allclose(got, start[i], atol=1e-7):
            raise CheckFailed(f"{what}: the parameters did not change.")
        wrong_sign = 2 * start[i] - want
        if steps == 1 and np.allclose(got, wrong_sign, rtol=1e-4, atol=1e-5):
            raise CheckFailed(f"{what}: the parameters moved *up* the gradient. "
                              "w ← w − α·∇L subtracts the step.")
        worst = float(np.abs(got - want).max())
        raise CheckFailed(f"{what}: parameter {i} is off by up to {worst:.3g} "
                          f"(lr={problem['lr']:.3f}, momentum={problem['momentum']:.3f}, "
                          f"weight_decay={problem['weight_decay']:.3f}).")
    return f"{len(expected)} parameters match the reference after {steps} step(s)"


def _sgd_probe(ns: dict, seed: int) -> Arrays:
    return _run(ns["sgd_step"], _problem(seed, momentum=False, weight_decay=False), steps=1,
                with_velocity=False)


def _sgd_verify(arrays: Arrays, seed: int) -> str:
    return _compare(arrays, _problem(seed, momentum=False, weight_decay=False), steps=1,
                    what="sgd_step")


def _momentum_check(check_id: str, *, weight_decay: bool) -> Check:
    def probe(ns: dict, seed: int) -> Arrays:
        problem = _problem(seed, momentum=True, weight_decay=weight_decay)
        return _run(ns["sgd_momentum_step"], problem, steps=STEPS, with_velocity=True)

    def verify(arrays: Arrays, seed: int) -> str:
        problem = _problem(seed, momentum=True, weight_decay=weight_decay)
        return _compare(arrays, problem, steps=STEPS, what="sgd_momentum_step")

    return Check(check_id, ("sgd_momentum_step",), probe, verify)


register(Check("ex01.sgd_step", ("sgd_step",), _sgd_probe, _sgd_verify))
register(_momentum_check("ex01.momentum", weight_decay=False))
register(_momentum_check("ex01.weight_decay", weight_decay=True))
