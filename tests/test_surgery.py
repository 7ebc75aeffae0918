"""Freezing, heads, parameter groups and the batch-norm switch, across architectures."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tlkit
from tlkit.models.surgery import trainable_groups

ARCHS = ["efficientnet_lite0", "resnet18", "mobilenet_v3_small"]


@pytest.fixture(params=ARCHS)
def model(request):
    return tlkit.get_backbone(request.param, weights=None, num_classes=3)


def head_params(model) -> int:
    return sum(p.numel() for p in model.head.parameters())


def test_freeze_leaves_only_the_head_trainable(model):
    tlkit.freeze(model)
    assert tlkit.count_parameters(model, trainable=True) == head_params(model)
    assert tlkit.count_parameters(model, trainable=False) == \
        tlkit.count_parameters(model) - head_params(model)
    tlkit.unfreeze(model)
    assert tlkit.count_parameters(model, trainable=False) == 0


def test_freeze_to_trains_more_as_n_falls(model):
    counts = [tlkit.count_parameters(tlkit.freeze_to(model, n), trainable=True)
              for n in range(len(model.blocks), -1, -1)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert counts[0] == head_params(model)
    assert counts[-1] == tlkit.count_parameters(model)


def test_negative_freeze_to_equals_unfreeze_last(model):
    a = tlkit.count_parameters(tlkit.freeze_to(model, -2), trainable=True)
    b = tlkit.count_parameters(tlkit.unfreeze_last(model, 2), trainable=True)
    assert a == b
    late = sum(p.numel() for p in model.blocks[-2:].parameters()) + \
        sum(p.numel() for p in model.neck.parameters()) + head_params(model)
    assert b == late


def test_out_of_range_block_counts_are_rejected(model):
    with pytest.raises(ValueError, match="has 5 blocks"):
        tlkit.freeze_to(model, 6)
    with pytest.raises(ValueError, match="has 5 blocks"):
        tlkit.unfreeze_last(model, -1)


def test_a_training_step_changes_only_trainable_weights():
    model = tlkit.get_backbone("resnet18", weights=None, num_classes=2)
    tlkit.unfreeze_last(model, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(tlkit.param_groups(model, lr=0.1), momentum=0.9)
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("head.") for k in changed)
    assert any(k.startswith("blocks.4.") for k in changed)
    assert not any(k.startswith(("blocks.0.", "blocks.1.", "blocks.2.", "blocks.3.")) for k in changed)


def test_discriminative_rates_spread_geometrically_from_block0_to_head(model):
    groups = tlkit.param_groups(tlkit.unfreeze(model), lr=slice(1e-5, 1e-3))
    assert [g["name"] for g in groups] == [f"block{i}" for i in range(5)] + ["head"]
    rates = [g["lr"] for g in groups]
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-3)
    ratios = [b / a for a, b in zip(rates, rates[1:])]
    assert ratios == pytest.approx([ratios[0]] * 5)


def test_param_groups_leave_frozen_parameters_out(model):
    groups = tlkit.param_groups(tlkit.unfreeze_last(model, 1), lr=slice(1e-5, 1e-3))
    assert [g["name"] for g in groups] == ["block4", "head"]
    assert groups[-1]["lr"] == pytest.approx(1e-3)  # the head keeps the top rate
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert tlkit.param_groups(model, lr=3e-4)[0]["lr"] == 3e-4


def test_everything_frozen_or_bad_rates_explain_themselves(model):
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter .* is frozen"):
        tlkit.param_groups(model, lr=1e-3)
    tlkit.unfreeze(model)
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        tlkit.param_groups(model, lr=slice(1e-3, 1e-5))
    with pytest.raises(ValueError, match="positive number"):
        tlkit.param_groups(model, lr=-1.0)


def test_replace_head_with_hidden_layer_trains_after_freeze(model):
    tlkit.freeze(model)
    tlkit.replace_head(model, 5, hidden=32, dropout=0.1)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    assert tlkit.count_parameters(model, trainable=True) == \
        (model.num_features * 32 + 32) + (32 * 5 + 5)
    with pytest.raises(ValueError):
        tlkit.replace_head(model, 0)


def test_batchnorm_switch(model):
    bns = [m for m in model.blocks[0].modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tlkit.freeze(model)
    model.train()
    assert not any(m.training for m in bns)
    assert not any(p.requires_grad for m in bns for p in m.parameters())

    tlkit.set_batchnorm(model, "train")
    model.train()
    assert all(m.training for m in bns)
    assert all(p.requires_grad for m in bns for p in m.parameters())
    # Only batch norm was re-enabled: convolutions in frozen blocks stay frozen.
    convs = [m for m in model.blocks[0].modules() if isinstance(m, nn.Conv2d)]
    assert not any(p.requires_grad for m in convs for p in m.parameters())

    tlkit.set_batchnorm(model, "frozen")
    model.train()
    assert not any(m.training for m in bns)
    assert tlkit.count_parameters(model, trainable=True) == head_params(model)
    with pytest.raises(ValueError, match="'frozen' or 'train'"):
        tlkit.set_batchnorm(model, "eval")


def test_inference_mode_keeps_every_batchnorm_in_eval_through_later_surgery(model):
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    convs = [m for m in model.blocks[-1].modules() if isinstance(m, nn.Conv2d)]
    tlkit.set_batchnorm(model, "inference")
    assert model.bn_mode == "inference"
    for surgery in (tlkit.unfreeze, tlkit.freeze, lambda m: tlkit.unfreeze_last(m, 2),
                    lambda m: tlkit.freeze_to(m, 1)):
        surgery(model)
        model.train()
        assert not any(m.training for m in bns)                       # unfrozen blocks too
        assert not any(p.requires_grad for m in bns for p in m.parameters())  # γ, β fixed
        assert model.head.training
    # Only batch norm is held: the convolutions of the unfrozen last block still train.
    assert all(p.requires_grad for m in convs for p in m.parameters())
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(4, 3, 64, 64) * 3 + 1)          # a training-mode forward pass
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))

    tlkit.set_batchnorm(model, "frozen")  # back: unfrozen blocks' batch norm trains again
    model.train()
    last = [m for m in model.blocks[-1].modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(m.training for m in last)
    assert all(p.requires_grad for m in last for p in m.parameters())
    with pytest.raises(ValueError, match="'inference', 'frozen' or 'train'"):
        tlkit.set_batchnorm(model, "eval")


def test_pretrained_backbones_default_to_inference_mode_random_ones_to_frozen():
    pretrained = tlkit.get_backbone("efficientnet_lite0", weights="imagenet", num_classes=2)
    assert pretrained.bn_mode == "inference"
    assert tlkit.get_backbone("efficientnet_lite0", weights=None).bn_mode == "frozen"
    assert tlkit.small_cnn(num_classes=2).bn_mode == "frozen"
    bns = [m for m in pretrained.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    stats = {k: v.clone() for k, v in pretrained.state_dict().items() if "running" in k}
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    tlkit.fine_tune(pretrained, (x, y), freeze_epochs=1, epochs=1, batch_size=4,
                    progress=False, device="cpu")           # unfreezes every block
    assert trainable_groups(pretrained)[0] == "block0"
    pretrained.train()
    assert not any(m.training for m in bns)
    assert all(torch.equal(v, pretrained.state_dict()[k]) for k, v in stats.items())


def test_requires_grad_alone_does_not_stop_running_statistics_outside_a_backbone():
    # The pitfall lesson 05 shows: a frozen batch-norm layer in train mode still updates its
    # running statistics in plain PyTorch; a Backbone's train() keeps it in eval mode.
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).requires_grad_(False).train()
    plain(torch.randn(8, 3, 8, 8) + 2)
    assert plain[1].running_mean.abs().min() > 0
    model = tlkit.small_cnn(num_classes=2)
    tlkit.freeze(model).train()
    bn = next(m for m in model.blocks.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model(torch.randn(8, 3, 32, 32) + 2)
    assert torch.equal(before, bn.running_mean)


def test_summary_table_adds_up(model):
    tlkit.unfreeze_last(model, 2)
    table = tlkit.summary(model)
    assert [r[0] for r in table.rows] == [f"block{i}" for i in range(5)] + ["head"]
    assert table.trainable == tlkit.count_parameters(model, trainable=True)
    assert table.frozen == tlkit.count_parameters(model, trainable=False)
    text = str(table)
    assert "head" in text and f"{table.trainable:,}" in text
    assert "<table>" in table._repr_html_()


def test_plain_modules_get_a_pointer_instead_of_a_crash():
    with pytest.raises(TypeError, match="tlkit Backbone"):
        tlkit.freeze(nn.Linear(3, 2))
