"""The compute limit of an epoch: every forward pass recorded, then replayed on ready tensors.

While an epoch runs, a forward pre-hook on both networks records every pass (network, mode,
grad on or off, input shape and strides); `ComputeLimit` replays exactly that trace in a tight
loop on copies of the networks, on random tensors already in memory (no augmentation, no
indexing, no mixing): the time the epoch would take if its network compute were all it did.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from common import clock
from dividemix.method.inference import EVAL_BATCH
from dividemix.training.optim import make_optimizer, set_lr
from dividemix.training.workspace import NETS, Workspace


@dataclass(frozen=True)
class Forward:
    """One recorded forward pass."""

    net: int
    training: bool  # the network's mode (BatchNorm differs)
    grad: bool  # gradients on: this pass is followed by backward + an SGD step
    shape: tuple[int, ...]  # the input batch's shape, batch size first
    stride: tuple[int, ...]  # and its strides: the memory layout picks the convolution kernels

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def channels_last(self) -> bool:
        """Channels innermost (NHWC): PyTorch then runs the whole network channels-last."""
        return len(self.shape) == 4 and self.stride[1] == 1 and self.shape[2] * self.shape[3] > 1


@contextlib.contextmanager
def record_forwards(nets: dict[int, nn.Module], trace: list[Forward]) -> Iterator[None]:
    """Append a `Forward` to `trace` for every call of either network."""
    def hook_for(net_id: int):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            trace.append(Forward(net_id, module.training, torch.is_grad_enabled(), tuple(x.shape), x.stride()))
        return hook

    handles = [nets[i].register_forward_pre_hook(hook_for(i)) for i in NETS]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def expected_forwards(labeled: dict[int, int], n_train: int, n_test: int, batch: int) -> tuple[int, int, int]:
    """(no-grad forwards, gradient passes, train steps) of one epoch, counted from the algorithm."""
    eval_and_test = 2 * (math.ceil(n_train / EVAL_BATCH) + math.ceil(n_test / EVAL_BATCH))
    no_grad = grad = steps_total = 0
    for divider in (2, 1):  # net1 trains on net2's division, then net2 on net1's
        n_labeled = labeled[divider]
        steps = math.ceil(n_labeled / batch)
        has_unlabeled = n_labeled < n_train
        no_grad += steps * (2 + (4 if has_unlabeled else 0))  # co_refine 2, co_guess 2 net + 2 peer
        grad += steps
        steps_total += steps
    return no_grad + eval_and_test, grad, steps_total


class ComputeLimit:
    """Replays a recorded forward trace on copies of the networks, on ready random tensors."""

    def __init__(self, ws: Workspace, nets: dict[int, nn.Module], trace: list[Forward]):
        train = ws.config.train
        self.device = ws.device
        self.trace = trace
        self.nets = {i: copy.deepcopy(nets[i]) for i in NETS}  # the real networks stay untouched
        self.optimizers = {i: make_optimizer(self.nets[i], train) for i in NETS}
        for optimizer in self.optimizers.values():
            set_lr(optimizer, train.lr)
        generator = torch.Generator().manual_seed(0)
        layouts = sorted({(f.shape, f.stride) for f in trace})
        self.inputs = {layout: random_like_layout(*layout, generator).to(self.device) for layout in layouts}
        sizes = sorted({f.batch for f in trace})
        self.targets = {b: torch.randint(0, ws.num_classes, (b,), generator=generator).to(self.device)
                        for b in sizes}

    def run_once(self) -> float:
        start = clock(self.device)
        for f in self.trace:
            net = self.nets[f.net]
            if net.training != f.training:
                net.train(f.training)
            x = self.inputs[f.shape, f.stride]
            if f.grad:
                loss = F.cross_entropy(net(x), self.targets[f.batch])
                optimizer = self.optimizers[f.net]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            else:
                with torch.no_grad():
                    net(x)
        return clock(self.device) - start

    def run(self, repeats: int) -> list[float]:
        return [self.run_once() for _ in range(repeats)]


def random_like_layout(shape: tuple[int, ...], stride: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Standard-normal values in a tensor of exactly this shape and these strides (on the CPU)."""
    x = torch.empty_strided(shape, stride)
    x.copy_(torch.randn(shape, generator=generator))
    return x


def trace_summary(trace: list[Forward]) -> str:
    no_grad = [f for f in trace if not f.grad]
    grad = [f for f in trace if f.grad]
    nhwc = sum(f.channels_last for f in trace)
    return (f"{len(no_grad)} no-grad forwards ({sum(f.batch for f in no_grad)} images), "
            f"{len(grad)} forward+backward ({sum(f.batch for f in grad)} images), "
            f"{nhwc} of {len(trace)} inputs channels-last")


def check_trace(trace: list[Forward], labeled: dict[int, int], ws: Workspace) -> str:
    """The recorded passes of an epoch against `expected_forwards`' analytic count."""
    no_grad, grad, steps = expected_forwards(labeled, ws.n_train, len(ws.test_images), ws.config.train.batch_size)
    seen_no_grad = sum(not f.grad for f in trace)
    seen_grad = sum(f.grad for f in trace)
    verdict = "matches" if (seen_no_grad, seen_grad) == (no_grad, grad) else (
        f"DIFFERS from the analytic count ({no_grad} no-grad, {grad} forward+backward)")
    return f"          trace: {steps} train steps, {trace_summary(trace)}; {verdict}"
