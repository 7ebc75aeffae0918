"""Several processes, one run: the same ``fit`` under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N train.py`` starts N copies of an unchanged script; each is told
its place through WORLD_SIZE, RANK and LOCAL_RANK. ``fit`` then joins the process group (NCCL
on GPUs, gloo on the CPU), trains on GPU LOCAL_RANK, and every process sees its own shard of
each epoch's shuffle. The rules:

- ``batch_size`` is per process (PyTorch's DDP convention): N processes with batch_size B take
  N·B examples a step, with the gradient averaged over all of them — the step one process
  would take with batch_size N·B on the same examples (tests/test_ddp.py checks it).
- Gradients are averaged by DDP; the loss each step and the epoch's metrics are averaged over
  processes too, so every decision (a diverged loss) and every History is the same on each.
- Batch norm in training mode normalises over each process's own batch; after each epoch every
  process takes rank 0's running statistics, so the model scored and saved is one model.
- Rank 0 alone writes the checkpoint and the progress lines; the others wait for the write,
  so ``resume=True`` finds the same ``last.pt`` in every process (a disk they all see).
- An error in one process ends it, and torchrun then stops the others: so a GPU out of memory
  is raised, not retried with half the batch — a retry in one process alone would leave the
  others waiting for it forever.
- ``sync_batchnorm=True`` swaps the batch-norm layers for SyncBatchNorm while fit trains (GPUs
  and NCCL only; refused on a CPU) and puts the user's own layers back afterwards.

Example (inside ``fit``)::

    ranks, device = join(device=torch.device("cpu"), sync_batchnorm=False)
    loader = ranks.loader(dataset, batch_size=32, seed=0, epoch=0)
"""
from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["Ranks", "join", "launched"]


def launched() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when this process is one of several, else None.

    Example: ``launched()`` is ``(1, 2, 1)`` in the second process of a 2-process torchrun.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # a group the user set up: it decides
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return None
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} says torchrun started this process as one of "
                           f"several, but this PyTorch has no torch.distributed: install a build "
                           f"with it, or start the script with python alone")
    gpus = torch.cuda.device_count()
    local = int(os.environ.get("LOCAL_RANK", rank % gpus if gpus else 0))
    return rank, world, local


def join(*, device: torch.device, sync_batchnorm: bool) -> tuple["Ranks", torch.device]:
    """This process's ranks and the device it trains on; joins the process group if needed.

    Outside torchrun: one rank and ``device`` unchanged. Under it a GPU run uses
    cuda:LOCAL_RANK — one GPU per process, whatever cuda device the script names.

    Example: ``ranks, device = join(device=torch.device("cuda"), sync_batchnorm=True)``
    """
    if sync_batchnorm and device.type != "cuda":
        # Refused even in one process: on this device the option could never do anything.
        raise ValueError(f"sync_batchnorm=True needs GPUs, but this run is on {device.type}: "
                         f"PyTorch's SyncBatchNorm runs only on CUDA with the NCCL backend. Drop "
                         f"sync_batchnorm=True here (each process then normalises over its own "
                         f"batch), or train on GPUs: torchrun --nproc_per_node=<GPUs> train.py")
    place = launched()
    if place is None:
        return Ranks(device=device), device
    import torch.distributed as dist

    rank, world, local = place
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local} but this machine has "
                               f"{torch.cuda.device_count()} GPU(s): start one process per GPU, "
                               f"torchrun --nproc_per_node={torch.cuda.device_count()} ...")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)  # NCCL's collectives and barriers use the current GPU
    elif device.type != "cpu":
        raise ValueError(f"under torchrun fit trains on 'cuda' or 'cpu', not {device.type!r}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)  # a group left open makes PyTorch warn as the script exits
    backend = dist.get_backend()
    if backend == "nccl" and device.type == "cpu":
        raise ValueError("the process group uses NCCL, which moves GPU tensors only, but "
                         "device='cpu': pass device='cuda', or set the group up with "
                         "backend='gloo'")
    if sync_batchnorm and backend != "nccl":
        raise ValueError(f"sync_batchnorm=True needs the NCCL backend, but the process group "
                         f"uses {backend}: set it up with backend='nccl', or let fit do it")
    return Ranks(device=device, rank=rank, world=world), device


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: rank ``rank`` of ``world``, training on ``device``. For a
    lone process (``world=1``) every method below is the plain single-process step."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True in the one process that writes checkpoints and progress (rank 0)."""
        return self.rank == 0

    def seed(self, epoch_seed: int) -> int:
        """The seed for this process's dropout and augmentation: rank 0 keeps ``epoch_seed``,
        the others differ, so the processes do not draw the same random masks."""
        return (epoch_seed + 7_919 * self.rank) % 2**32

    def loader(self, dataset: torch.utils.data.Dataset, *, batch_size: int, seed: int,
               epoch: int, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
        """The epoch's batches for this process: all of ``dataset``, or its shard."""
        n = len(dataset) if self.world == 1 else len(dataset) // self.world
        if n == 0:
            raise ValueError(f"train_data has {len(dataset)} example(s) for {self.world} "
                             f"processes: each needs at least one; use fewer processes")
        # Generators of their own, not the global RNG: shuffling must not move dropout's seeds.
        options = dict(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                       drop_last=n > batch_size and n % batch_size == 1)  # a lone sample breaks BN
        if self.world == 1:
            return DataLoader(dataset, shuffle=True,
                              generator=torch.Generator().manual_seed(seed + epoch), **options)
        # DistributedSampler shuffles with seed + epoch (set_epoch), the same on every rank;
        # rank r takes every world-th index of it, so step s of the N processes together is
        # step s of one process with batch_size N·B in that order. drop_last: equal shards, no
        # example twice (at most N-1 sit an epoch out); every rank then takes as many steps.
        sampler = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, seed=seed,
                                     shuffle=True, drop_last=True)
        sampler.set_epoch(epoch)
        return DataLoader(dataset, sampler=sampler,
                          generator=torch.Generator().manual_seed(self.seed(seed + epoch)),
                          **options)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` itself, or a DDP wrapper around it for the training steps. It shares the
        parameters, so ``model`` (never the wrapper) is saved, evaluated and returned."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # static_graph: DDP finds, in the first step, the trainable parameters that the forward
        # never uses (an unused head, an aux branch) and averages the others correctly without
        # find_unused_parameters' search every step. Without either, such a parameter stalls
        # its gradient bucket and the ranks' weights silently drift apart.
        return DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            static_graph=True)

    def mean(self, loss: torch.Tensor) -> float:
        """The batch's loss averaged over the processes: the same number on each."""
        if self.world == 1:
            return loss.item()
        return self._reduce([loss.detach().double()], "sum")[0] / self.world

    def total(self, *values: float) -> list[float]:
        """Each value summed over the processes (an epoch's loss sum, correct, count)."""
        return list(values) if self.world == 1 else self._reduce(values, "sum")

    def slowest(self, seconds: float) -> float:
        """An epoch's time: that of the slowest process, so every History says the same."""
        return seconds if self.world == 1 else self._reduce([seconds], "max")[0]

    def share_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) in every process: each process's
        last batch moved its own, and the model scored and saved must be the same in all."""
        if self.world > 1:
            import torch.distributed as dist

            for buffer in model.buffers():
                dist.broadcast(buffer.data, src=0)

    def wait(self) -> None:
        """Every process waits here for the others (for rank 0's checkpoint write)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def evaluate(self, score: Callable[..., dict], model: nn.Module,
                 data: torch.utils.data.Dataset, *, batch_size: int) -> dict[str, float]:
        """``score`` (``evaluate``) over all of ``data``: each process scores every world-th
        example and the sums are added, so the figure is the one a single process gets."""
        if self.world == 1:
            return score(model, data, batch_size=batch_size, device=self.device)
        part = torch.utils.data.Subset(data, range(self.rank, len(data), self.world))
        got = score(model, part, batch_size=batch_size, device=self.device) if len(part) else \
            {"loss": 0.0, "acc": 0.0}
        loss, correct, count = self.total(got["loss"] * len(part), got["acc"] * len(part),
                                          len(part))
        return {"loss": loss / count, "acc": round(correct) / count}

    @contextmanager
    def synced_batchnorm(self, model: nn.Module, *, on: bool) -> Iterator[None]:
        """Inside the block ``model``'s batch-norm layers are SyncBatchNorm (statistics over
        every process's batch); afterwards the user's own layers are back, holding what was
        learned. With one process there is nothing to synchronise: nothing changes."""
        swapped = []
        if on and self.world > 1:
            for parent in list(model.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                            not isinstance(child, nn.SyncBatchNorm):
                        sync = nn.SyncBatchNorm.convert_sync_batchnorm(child)
                        setattr(parent, name, sync)
                        swapped.append((parent, name, child, sync))
        try:
            yield
        finally:
            for parent, name, child, sync in reversed(swapped):
                child.load_state_dict(sync.state_dict())  # shared tensors; a copy if moved
                child.train(sync.training)
                setattr(parent, name, child)

    def _reduce(self, values, op: str) -> list[float]:
        import torch.distributed as dist

        # float64: sums of counts stay exact; on the process group's own device (NCCL: GPU).
        t = torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(()).to(self.device)
                         for v in values])
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.tolist()
