"""fit(live=True) / fine_tune(live=True): one figure, redrawn in place each epoch, in a kernel.

The kernel is a real one (nbclient, as nbval and JupyterLab use), so the test sees what a
notebook keeps: the display updates folded into one output. The browser test checks the same
figure renders in JupyterLab (tests/test_browser.py).
"""
from __future__ import annotations

import base64

import pytest
import torch

import tlkit

CODE = """
import torch, tlkit
torch.manual_seed(0)
x, y = torch.randn(40, 3, 16, 16), torch.arange(40) % 2
model = tlkit.small_cnn(num_classes=2, width=4)
history = tlkit.fine_tune(model, (x, y), val_data=(x, y), freeze_epochs=2, epochs=2,
                          gradual={gradual}, live=True, progress=False, device="cpu")
print(len(history), history.marks)
"""


def _run(*codes: str):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in codes])
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return [cell.outputs for cell in nb.cells]


@pytest.mark.slow
def test_fine_tune_live_keeps_one_figure_with_every_epoch_and_the_unfreeze_mark():
    cells = _run(CODE.format(gradual=False), CODE.format(gradual=True))  # one kernel start
    for gradual, outputs in zip((False, True), cells):
        images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
        assert len(images) == 1, [o.output_type for o in outputs]  # updated in place
        meta = images[0].metadata["tlkit"]
        assert meta["epochs"] == 4  # the last update: both phases, every epoch
        assert meta["marks"]["unfreeze"] == 2
        if gradual:  # the second block joins one epoch after the first
            assert set(meta["marks"]) == {"unfreeze", "+block1"}
        png = base64.b64decode(images[0].data["image/png"])
        assert png.startswith(b"\x89PNG")
        printed = "".join(o.text for o in outputs if o.output_type == "stream" and
                          o.name == "stdout")
        assert printed.startswith("4 ")  # the History fine_tune returned: four epochs


def test_live_outside_a_notebook_says_so_and_trains_exactly_as_without(capsys):
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 16, 16), torch.arange(32) % 2
    runs = []
    for live in (False, True):
        tlkit.seed_everything(1)  # both start from the same weights
        model = tlkit.small_cnn(num_classes=2, width=4)
        tlkit.fit(model, (x, y), epochs=2, live=live, progress=False, device="cpu")
        runs.append(model.state_dict())
    assert "draws its curve in a notebook" in capsys.readouterr().out
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_live_must_be_true_or_false(bad):
    model = tlkit.small_cnn(num_classes=2, width=4)
    data = (torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(TypeError, match="live"):
        tlkit.fit(model, data, live=bad, progress=False)
    with pytest.raises(TypeError, match="live"):
        tlkit.fine_tune(model, data, live=bad, progress=False)
