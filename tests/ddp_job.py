"""A training run for test_ddp.py and tools/ddp_check.py: ``tlkit.fit`` under torchrun, or,
with --reference, the same training written out by hand in one process.

usage: [torchrun --nproc_per_node=N] ddp_job.py OUT EPOCHS BATCH [--ckpt DIR] [--resume]
       ddp_job.py OUT EPOCHS BATCH --reference     (one process; BATCH = N × the DDP batch)

Each process writes OUT/rank<r>.pt: its first and final weights, the training indices it was given (in
order), its History, the epochs it saved a checkpoint for, and fit's message for
sync_batchnorm=True on the CPU.
"""
import argparse
import os
from pathlib import Path

import torch
from torch import nn

import tlkit
import tlkit.learn.train as train

cli = argparse.ArgumentParser()
cli.add_argument("out", type=Path)
cli.add_argument("epochs", type=int)
cli.add_argument("batch_size", type=int)
cli.add_argument("--ckpt")
cli.add_argument("--resume", action="store_true")
cli.add_argument("--reference", action="store_true")
args = cli.parse_args()
rank = int(os.environ.get("RANK", 0))
torch.set_num_threads(1)  # the same kernels in every process
SEED, LR = 3, 0.05


class Recorded(torch.utils.data.TensorDataset):
    """A TensorDataset that notes every index it is asked for: the shard a process trained on."""

    seen: list[int] = []

    def __getitem__(self, i):
        self.seen.append(int(i))
        return super().__getitem__(i)


torch.manual_seed(0)  # the same data in every process
x = torch.randn(64, 3, 8, 8)
y = (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1].mean((1, 2)) > 0).long()  # 3 classes
val = (torch.randn(21, 3, 8, 8), torch.randint(0, 3, (21,)))  # 21: shards of 11 and 10

# Each process starts from other random weights: DDP must hand rank 0's to all of them.
torch.manual_seed(rank)
model = tlkit.small_cnn(num_classes=3, width=4)
tlkit.freeze_to(model, 2)  # blocks 0 and 1 frozen, their batch norm in eval mode
# Block 2's batch norm frozen too: a training batch norm normalises over each process's own
# batch, which no single-process run reproduces (sync_batchnorm=True does, on GPUs).
model.blocks[2][1].requires_grad_(False)
# A trainable layer the forward never uses (like an unused aux head): DDP must cope with it.
model.spare = nn.Linear(2, 2)
start = {k: v.clone() for k, v in model.state_dict().items()}



def reference() -> list[dict]:
    """fit's steps written out, in one process: SGD with fit's momentum 0.9 on each epoch's
    order as DistributedSampler draws it (seed·100003 + epoch), batch after batch."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR,
                          momentum=0.9)
    records = []
    for epoch in range(args.epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(
            SEED * 100_003 + epoch))
        model.train()  # the Backbone keeps its frozen batch norm in eval mode
        total, correct = 0.0, 0
        for batch in order.split(args.batch_size):
            Recorded.seen.extend(batch.tolist())
            logits = model(x[batch])
            loss = nn.functional.cross_entropy(logits, y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
            correct += (logits.argmax(1) == y[batch]).sum().item()
        scores = tlkit.evaluate(model, val, device="cpu")
        records.append({"epoch": epoch + 1, "train_loss": total / len(x),
                        "train_acc": correct / len(x), "lr": LR, "val_loss": scores["loss"],
                        "val_acc": scores["acc"]})
    return records


saved: list[int] = []
save_run = train.save_run
train.save_run = lambda path, **state: (saved.append(state["epoch"]), save_run(path, **state))

if args.reference:
    records = reference()
else:
    records = tlkit.fit(model, Recorded(x, y), val_data=val, epochs=args.epochs, lr=LR,
                        batch_size=args.batch_size, seed=SEED, checkpoint_dir=args.ckpt,
                        resume=args.resume, progress=rank == 0, device="cpu").records
# Batch norm in training mode: each process's running statistics follow its own batches; after
# fit every process must hold the same ones (rank 0's), so the model scored and saved is one.
torch.manual_seed(rank)
with_bn = tlkit.small_cnn(num_classes=3, width=4)
tlkit.fit(with_bn, (x, y), epochs=1, batch_size=args.batch_size, lr=LR, seed=SEED,
          progress=False, device="cpu")
try:
    tlkit.fit(model, (x, y), sync_batchnorm=True, device="cpu", progress=False)
    refusal = None
except ValueError as err:
    refusal = str(err)
args.out.mkdir(parents=True, exist_ok=True)
torch.save({"state": model.state_dict(), "start": start, "seen": Recorded.seen, "history": records,
            "saved": saved, "refusal": refusal, "with_bn": with_bn.state_dict(),
            "world": int(os.environ.get("WORLD_SIZE", 1))}, args.out / f"rank{rank}.pt")
