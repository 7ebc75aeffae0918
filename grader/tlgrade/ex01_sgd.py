"""ex01_sgd_update: the SGD step by hand, then momentum and weight decay (PyTorch's definition:
``v ← μ·v + (g + λ·w)``, ``w ← w − α·v``). The reference is computed here, in float64."""
from __future__ import annotations

import numpy as np
from tlkit.teach import exercises as ex

from .checks import Arrays, Check, CheckFailed, Context, register


def _flags(check_id: str) -> dict:
    return {"momentum": check_id != "ex01.sgd_step", "weight_decay": check_id == "ex01.weight_decay"}


def _inputs(check_id: str):
    def inputs(ctx: Context) -> Arrays:
        flags = _flags(check_id)
        problem = ex.sgd_problem(ctx.seed, **flags)
        steps = ex.STEPS if flags["momentum"] else 1
        arrays = {f"param/{i}": p for i, p in enumerate(problem["params"])}
        arrays.update({f"grad/{s}/{i}": g for s, grads in enumerate(problem["grads"][:steps])
                       for i, g in enumerate(grads)})
        arrays.update({k: np.array(problem[k]) for k in ("lr", "momentum", "weight_decay")})
        arrays.update(steps=np.array(steps), velocity=np.array(flags["momentum"]),
                      function=np.array("sgd_momentum_step" if flags["momentum"] else "sgd_step"))
        return arrays
    return inputs


def reference(inputs: Arrays) -> list[np.ndarray]:
    """The parameters after ``steps`` steps, in float64."""
    n = sum(1 for k in inputs if k.startswith("param/"))
    params = [inputs[f"param/{i}"].astype(np.float64) for i in range(n)]
    velocities = [np.zeros_like(p) for p in params]
    lr, mu, wd = (float(inputs[k]) for k in ("lr", "momentum", "weight_decay"))
    for s in range(int(inputs["steps"])):
        for i in range(n):
            d = inputs[f"grad/{s}/{i}"] + wd * params[i]
            velocities[i] = mu * velocities[i] + d
            params[i] = params[i] - lr * velocities[i]
    return params


def _verify(inputs: Arrays, outputs: Arrays, ctx: Context) -> str:
    what, steps = str(inputs["function"]), int(inputs["steps"])
    if not outputs["in_place"].all():
        raise CheckFailed("update each parameter in place (`p -= …` inside `torch.no_grad()`): "
                          "the optimizer holds these very tensors, so new ones would be lost.")
    expected = reference(inputs)
    for i, want in enumerate(expected):
        got, start = outputs[f"param/{i}"].astype(np.float64), inputs[f"param/{i}"]
        if got.shape != want.shape:
            raise CheckFailed(f"parameter {i} changed shape from {want.shape} to {got.shape}.")
        if np.allclose(got, want, rtol=1e-4, atol=1e-5):
            continue
        if np.allclose(got, start, atol=1e-7):
            raise CheckFailed(f"{what}: the parameters did not change.")
        if steps == 1 and np.allclose(got, 2 * start - want, rtol=1e-4, atol=1e-5):
            raise CheckFailed(f"{what}: the parameters moved *up* the gradient. "
                              "w ← w − α·∇L subtracts the step.")
        raise CheckFailed(f"{what}: parameter {i} is off by up to {np.abs(got - want).max():.3g} "
                          f"(lr={float(inputs['lr']):.3f}, momentum={float(inputs['momentum']):.3f}, "
                          f"weight_decay={float(inputs['weight_decay']):.3f}).")
    return f"{len(expected)} parameters match the reference after {steps} step(s)"


for _id, _needs in (("ex01.sgd_step", "sgd_step"), ("ex01.momentum", "sgd_momentum_step"),
                    ("ex01.weight_decay", "sgd_momentum_step")):
    register(Check(_id, (_needs,), "sgd", _inputs(_id), _verify))
