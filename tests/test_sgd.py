"""The hand-written SGD step agrees with torch.optim.SGD, bit for bit."""
from __future__ import annotations

import pytest
import torch

from tlkit import sgd_step


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _loss(model, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + step)
    x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
    return torch.nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_matches_torch_optim_sgd_over_several_steps(momentum, weight_decay):
    ours, theirs = _model(0), _model(0)
    opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum,
                          weight_decay=weight_decay)
    state = None
    for step in range(6):
        ours.zero_grad()
        _loss(ours, step).backward()
        state = sgd_step(ours.parameters(), lr=0.1, momentum=momentum,
                         weight_decay=weight_decay, state=state)
        opt.zero_grad()
        _loss(theirs, step).backward()
        opt.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b), f"step {step} differs"
    assert len(state) == (4 if momentum else 0)


def test_the_rule_is_w_minus_lr_times_grad():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    (w ** 2).sum().backward()  # gradient 2w
    sgd_step([w], lr=0.25)
    assert torch.equal(w.detach(), torch.tensor([0.5, -1.0]))


def test_frozen_parameters_get_no_update():
    model = _model(1)
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.clone()
    other = model[2].weight.clone()
    _loss(model, 0).backward()
    sgd_step(model.parameters(), lr=0.5, momentum=0.9)
    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[2].weight, other)


def test_the_step_is_not_recorded_by_autograd():
    w = torch.ones(3, requires_grad=True)
    (w * 2).sum().backward()
    sgd_step([w], lr=0.1)
    assert w.grad_fn is None and w.requires_grad


def test_negative_learning_rate_is_refused():
    w = torch.ones(1, requires_grad=True)
    w.sum().backward()
    with pytest.raises(ValueError, match="learning rate"):
        sgd_step([w], lr=-0.1)
