"""The processes of one run, as the training loop sees them: who it is, its share of the work, and
the few collectives DivideMix needs, on torch.distributed (NCCL on CUDA, gloo on the CPU).

One process (no torchrun around it) is `Cluster()`: every method is then the identity, so the
single-process run is the same code, byte for byte. Under torchrun's elastic agent (`launch`),
`join` opens the process group from the agent's environment. Collectives are only ever called by
every process in the same order: the loop's control flow depends on nothing one process alone
knows (the division, the batches and the sample are the same everywhere by construction).

The writer is the one process that writes the run's files: local rank 0 of the machine DVC
launched the stage on (`launch.WRITER_NODE` in its environment), wherever the rendezvous puts
global rank 0; it is also the one that fits the mixture and whose resume state every process
starts from.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from datetime import timedelta

import torch
from torch import nn

from dividemix.cluster.launch import WRITER_NODE


@dataclass(frozen=True)
class Cluster:
    """This process's place in the run: its rank, the number of processes, the writer's rank."""

    rank: int = 0
    world: int = 1
    writer: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    sync_batchnorm: bool = False  # distributed.sync_batchnorm (CUDA only)

    @property
    def is_writer(self) -> bool:
        return self.rank == self.writer

    @property
    def spread(self) -> bool:
        return self.world > 1

    # --- shares ----------------------------------------------------------------------------------
    def shard(self, n: int) -> torch.Tensor:
        """This process's positions among n items (host int64): every world-th from its rank, the
        last ones wrapped round to the front so that every process has ceil(n / world) of them
        (collectives want equal sizes; `gather` drops the repeats)."""
        per = -(-n // self.world)
        positions = torch.arange(self.rank, per * self.world, self.world)
        return positions % max(n, 1)

    def split(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's share of one step's batch (host indices): every world-th sample, contiguous
        (one copy to the device, pinned as it is). A batch smaller than the world is repeated
        first, so that no process steps on nothing: a repeat is not real (`real`) and weighs 0."""
        if not self.spread or len(batch) == 0:
            return batch
        if len(batch) < self.world:
            batch = batch.repeat(-(-self.world // len(batch)))[: self.world]
        return batch[self.rank :: self.world].contiguous()

    def real(self, n: int) -> int:
        """How many of the samples in this process's `split` of a batch of n are real (not repeats)."""
        return len(range(self.rank, n, self.world))

    # --- collectives -----------------------------------------------------------------------------
    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The n rows every process computed on its `shard(n)`, in item order, on every process."""
        if not self.spread:
            return local
        local = local.contiguous()
        out = local.new_empty((self.world * local.numel(),))
        # 1-D concatenated output: gloo's all-gather chunks the output along dim 0 only
        torch.distributed.all_gather_single(out, local.reshape(-1))
        rows = out.view(self.world, *local.shape).transpose(0, 1).reshape(self.world * local.shape[0], *local.shape[1:])
        return rows[:n]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over processes of a tensor of the same shape on each (a step's losses)."""
        if not self.spread:
            return values
        values = values.clone()
        torch.distributed.all_reduce(values)
        return values / self.world

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over processes, with autograd: its backward sums the processes' gradients (a
        loss computed from it in every process, like the prior penalty on the global mean)."""
        if not self.spread:
            return tensor
        return _AllSum.apply(tensor)

    def from_writer(self, tensor: torch.Tensor) -> torch.Tensor:
        """The writer's `tensor` on every process (same shape and dtype everywhere)."""
        if self.spread:
            torch.distributed.broadcast(tensor, src=self.writer)
        return tensor

    def object_from_writer(self, value):
        """The writer's Python object (a checkpoint's state) on every process, through the CPU."""
        if not self.spread:
            return value
        box = [value if self.is_writer else None]
        torch.distributed.broadcast_object_list(box, src=self.writer, device=self._collective_device())
        return box[0]

    def sync_buffers(self, net: nn.Module) -> None:
        """The writer's BatchNorm statistics in every process, before every pass that uses them
        (an eval pass, the peer's guesses in the other network's epoch) and every checkpoint:
        each process's training passes move its own on its share of the batches. (Within an
        epoch DDP broadcasts rank 0's before each forward with gradients; at every boundary the
        writer's are taken, so that what it checkpoints is what every process used.)"""
        if self.spread:
            for buffer in net.buffers():
                torch.distributed.broadcast(buffer, src=self.writer)

    def all_objects(self, value) -> list:
        """Every process's small Python object, in rank order, on every process."""
        if not self.spread:
            return [value]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, value)
        return out

    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    # --- networks --------------------------------------------------------------------------------
    def data_parallel(self, net: nn.Module) -> nn.Module:
        """`net` wrapped for distributed data parallel (gradients averaged by the engine), or `net`
        itself alone. Every parameter is used by every step (no find_unused_parameters)."""
        if not self.spread:
            return net
        if self.sync_batchnorm:  # (in place: the BatchNorm modules inside `net` are replaced)
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        # A convolution over one input channel (digits) returns its weight's gradient with another
        # stride on the size-1 dimension: the same memory, so DDP's warning says nothing here.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ids = [self.device.index] if self.device.type == "cuda" else None
        # gradient_as_bucket_view: the gradients live in the all-reduce buckets (no copy, less memory)
        return nn.parallel.DistributedDataParallel(net, device_ids=ids, gradient_as_bucket_view=True)


class _AllSum(torch.autograd.Function):
    """all_reduce(SUM) whose backward is all_reduce(SUM) of the gradients. (torch's own,
    torch.distributed.nn.functional.all_reduce, is deprecated in 2.14 for functional collectives
    that have no backward for it.) Every process calls both, in the same order: the forward in
    the step, the backward as autograd reaches it, before any DDP bucket (the loss comes first)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(grad)
        return grad


def plain(net: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or `net`): passes through it run no collective, so a
    no-grad pass never waits for the other processes (the guessing and eval passes)."""
    return getattr(net, "module", net)


def join(device: torch.device, *, expected: int, timeout_s: int, sync_batchnorm: bool = False) -> Cluster:
    """This process's Cluster: from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), the
    process group opened (NCCL on CUDA, gloo on the CPU); without it, one process."""
    if sync_batchnorm and device.type != "cuda":
        raise ValueError(f"distributed.sync_batchnorm: SyncBatchNorm runs on CUDA only (this run's device is "
                         f"{device.type}); set it false, or train on GPUs")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world == 1:
        return Cluster(device=device)
    if world != expected:
        raise RuntimeError(f"distributed: {world} processes joined the run, the parameters ask for {expected} "
                           "(distributed.processes_per_machine x distributed.machines)")
    local = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, timeout=timedelta(seconds=timeout_s), device_id=device
                                         if device.type == "cuda" else None)
    rank = torch.distributed.get_rank()
    mine = torch.tensor([int(local == 0 and os.environ.get(WRITER_NODE) == "1")], device=device)
    flags = torch.zeros(world, dtype=mine.dtype, device=device)
    torch.distributed.all_gather_single(flags, mine)
    if int(flags.sum()) != 1:
        raise RuntimeError(f"distributed: {int(flags.sum())} machines say they launched the stage; exactly one "
                           "runs it through DVC, the others join with `dividemix join`")
    return Cluster(rank=rank, world=world, writer=int(flags.argmax()), device=device, sync_batchnorm=sync_batchnorm)
