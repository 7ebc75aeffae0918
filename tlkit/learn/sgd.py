"""The SGD update rule, written out by hand (lesson 03).

    w ← w − α · ∇L(y, f(x))

``torch.optim.SGD`` does exactly this; writing it once makes the rule concrete, and the
tests check both agree to the last bit over several steps.
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..core.checks import number

__all__ = ["sgd_step"]


@torch.no_grad()  # the update itself must not become part of the next gradient
def sgd_step(params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
             weight_decay: float = 0.0, state: dict | None = None) -> dict:
    """Apply one SGD step to every parameter that has a gradient; return the state.

    With momentum the velocity of each parameter is kept in ``state`` — pass the returned
    dict back in on the next call. Parameters with ``grad is None`` (frozen ones, or ones
    the loss did not reach) are left untouched, exactly like ``torch.optim.SGD``.

    Example::

        state = {}
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            model.zero_grad()
            loss.backward()
            state = sgd_step(model.parameters(), lr=0.1, momentum=0.9, state=state)
    """
    # A NaN or infinite rate would write NaN into every weight, silently: refuse it here.
    lr = number("lr", lr, min=0, hint="The learning rate α is a small positive number such as 0.1")
    momentum = number("momentum", momentum, min=0, max=0.999,
                      hint="At 1 or above the velocity never decays and the steps grow")
    weight_decay = number("weight_decay", weight_decay, min=0)
    if state is None:
        state = {}
    elif not isinstance(state, dict):
        raise TypeError(f"state must be the dict the previous sgd_step returned (or None), got "
                        f"{type(state).__name__}")
    if isinstance(params, torch.nn.Module):
        params = params.parameters()  # sgd_step(model, ...) means its parameters
    if isinstance(params, torch.Tensor):
        params = [params]  # one tensor, not its rows
    params = list(params)
    if not params:
        raise ValueError("sgd_step got no parameters. A generator such as model.parameters() "
                         "can be used only once: call model.parameters() again at every step, "
                         "or keep params = list(model.parameters())")
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"sgd_step takes tensors (model.parameters()), got "
                            f"{type(p).__name__}")
    if not any(p.requires_grad for p in params):
        raise ValueError("none of these tensors is trainable (requires_grad=False): pass "
                         "model.parameters(), not model.state_dict() or copies of the weights")
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        raise ValueError("none of the parameters has a gradient: call loss.backward() before "
                         "sgd_step (and model.zero_grad() before that)")
    # Checked before any update: one NaN gradient would spread into every weight it touches.
    if any(not torch.isfinite(p.grad).all() for p in with_grad):
        raise FloatingPointError("a gradient holds NaN or infinite values (the loss blew up, or "
                                 "the data has NaNs): no weight was changed. Lower the learning "
                                 "rate, or check the inputs")
    for p in with_grad:
        step = p.grad
        if weight_decay != 0:
            # L2 regularisation folded into the gradient: ∇(L + λ/2·|w|²) = ∇L + λ·w
            step = step.add(p, alpha=weight_decay)
        if momentum != 0:
            velocity = state.get(p)
            if velocity is None:
                # PyTorch starts the velocity at the first gradient, not at zero.
                velocity = step.clone()
            else:
                velocity.mul_(momentum).add_(step)
            state[p] = velocity
            step = velocity
        p.add_(step, alpha=-lr)
    return state
