"""Helpers the lessons lean on: batch-norm adaptation, measurements, quizzes, the explorer."""
from __future__ import annotations

import pytest
import torch

import tlkit


def test_adapt_batchnorm_learns_the_target_statistics_and_nothing_else():
    model = tlkit.small_cnn(num_classes=2)
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if "running" not in k and "num_batches" not in k}
    target = torch.randn(64, 3, 16, 16) * 3 + 5  # a strongly shifted domain
    tlkit.adapt_batchnorm(model, (target, torch.zeros(64, dtype=torch.long)), device="cpu")
    first_bn = model.blocks[0][1]
    conv_out = model.blocks[0][0](target)
    assert torch.allclose(first_bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-4)
    assert not model.training and first_bn.momentum == 0.1
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.raises(ValueError, match="no batch-norm"):
        tlkit.adapt_batchnorm(torch.nn.Linear(2, 2), (torch.randn(4, 2), torch.zeros(4)))


def test_gmacs_counts_a_convolution_exactly_and_grows_with_the_image():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False))
    # 8 output channels × 3 × 3 × 3 weights, once per output pixel.
    assert tlkit.gmacs(conv, size=10) == pytest.approx(8 * 27 * 10 * 10 / 1e9)
    model = tlkit.get_backbone("resnet18", weights=None)
    assert tlkit.gmacs(model, size=224) == pytest.approx(model.weights.meta["gmacs"], rel=0.01)
    # A quarter of the pixels, about a quarter of the work (borders and rounding: not exactly).
    assert tlkit.gmacs(model, size=112) == pytest.approx(tlkit.gmacs(model, size=224) / 4, rel=0.1)


def test_activation_megabytes_counts_what_backward_needs_and_changes_nothing():
    import weakref

    # Conv(3→8) saves its input; BatchNorm saves its input; ReLU saves its output: three
    # tensors of batch × channels × 10 × 10 float32 numbers.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU())
    net.eval()
    expected = 4 * 4 * (3 + 8 + 8) * 10 * 10 / 1e6
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert tlkit.activation_megabytes(net, size=10, batch_size=4) == pytest.approx(expected, rel=0.05)
    assert not net.training  # put back as it was, statistics untouched
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())

    model = tlkit.get_backbone("efficientnet_lite0", weights=None)
    small = tlkit.activation_megabytes(model, size=64, batch_size=2)
    assert tlkit.activation_megabytes(model, size=64, batch_size=4) == pytest.approx(2 * small, rel=0.05)
    tlkit.freeze(model)  # a frozen body keeps nothing for backward: only the head's input
    assert tlkit.activation_megabytes(model, size=64, batch_size=4) < 0.01 * small
    # Nothing is left holding the network once it is deleted (a saved-tensor cycle would).
    alive = weakref.ref(next(model.parameters()))
    del model
    import gc
    gc.collect()
    assert alive() is None


def test_measurements_are_plausible():
    model = tlkit.get_backbone("mobilenet_v3_small", weights=None)
    assert tlkit.weights_megabytes(model) == pytest.approx(
        tlkit.count_parameters(model) * 4 / 1e6, rel=0.01)
    seconds = tlkit.latency(model, size=64, repeats=3)
    assert 0 < seconds < 5
    assert tlkit.peak_memory_megabytes() > 100  # torch alone is several hundred MB


def test_quiz_gives_feedback(capsys):
    q = tlkit.quiz("2 + 2?", options={"a": "4", "b": "5"}, answer="a", explain="Arithmetic.",
                   wrong={"b": "Count again."})
    assert q.check("a") and "✔ Right. Arithmetic." in capsys.readouterr().out
    assert not q.check("b") and "Count again." in capsys.readouterr().out
    assert "Choose one of a, b" in q.feedback("z")
    assert "a) 4" in repr(q)
    with pytest.raises(ValueError):
        tlkit.quiz("?", options={"a": "x"}, answer="b", explain="")


def test_unfreeze_explorer_updates_counts_and_trains():
    model = tlkit.get_backbone("mobilenet_v3_small", weights=None, num_classes=2)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 2
    explorer = tlkit.unfreeze_explorer(model, (x, y), steps=2, batch_size=4)
    shown = explorer.table.value
    explorer.blocks.value = 3
    assert explorer.table.value != shown
    assert f"{tlkit.count_parameters(model, trainable=True):,}" in explorer.table.value
    rates = explorer.rates()
    assert rates[-1] == pytest.approx(explorer.head_lr.value)
    assert rates[0] == pytest.approx(explorer.head_lr.value / explorer.ratio.value)
    explorer.train()
    assert "train_loss" in explorer.log.value and "training…" not in explorer.log.value
