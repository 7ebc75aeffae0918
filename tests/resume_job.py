"""A training run for test_train.py to start, kill and resume in a subprocess.

usage: python resume_job.py CHECKPOINT_DIR OUTPUT.pt PROGRESS_FILE RESUME(0/1) SLEEP_PER_BATCH
"""
import sys
import time
from pathlib import Path

import torch

import tlkit

ckpt, out, progress_file, resume, pause = sys.argv[1:6]
torch.set_num_threads(1)  # the same kernels in every run
torch.manual_seed(0)
x = torch.randn(512, 3, 16, 16)
y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long()
model = tlkit.small_cnn(num_classes=2)
tlkit.replace_head(model, 2, hidden=16, dropout=0.3)  # dropout: the RNG must be restored too


def on_batch(epoch: int, step: int, loss: float) -> None:
    Path(progress_file).write_text(f"{epoch} {step}")
    time.sleep(float(pause))  # gives the test time to kill us in the middle of an epoch


tlkit.fit(model, (x, y), epochs=4, lr=0.05, batch_size=32, seed=7, checkpoint_dir=ckpt,
          resume=resume == "1", progress=False, device="cpu", on_batch=on_batch)
torch.save(model.state_dict(), out)
