"""What the unit tests of the method and the epoch loop share: tiny networks and batches, a known
division, one step with fixed draws, and readable views of the records the library returns."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dividemix.method.codivide import Division, Mixture
from dividemix.method.losses import StepLosses
from dividemix.method.mixmatch import MixDraws, StepBatch, StepOptions, train_step
from dividemix.training.optim import make_optimizer
from dividemix.training.testing import Accuracies
from dividemix.training.workspace import NETS, Workspace


def t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def np_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_sharpen(p, T):
    q = np.asarray(p, dtype=np.float64) ** (1.0 / T)
    return q / q.sum(axis=-1, keepdims=True)


class Lookup(nn.Module):
    """A stub network: the logits of a sample are table[first value of the sample] (fixed, known)."""

    def __init__(self, table: dict[int, list[float]]):
        super().__init__()
        self.table = table
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.stack([t(self.table[int(v)]) for v in x.reshape(len(x), -1)[:, 0]])


class Fixed(nn.Module):
    """Logits given per sample, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def forward(self, x):
        return self.logits[: len(x)]


def tiny_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def make_batch(b: int, bu: int, seed: int = 0) -> StepBatch:
    g = torch.Generator().manual_seed(seed)
    return StepBatch(
        x1=torch.randn(b, 4, generator=g),
        x2=torch.randn(b, 4, generator=g),
        y=torch.randint(0, 3, (b,), generator=g),
        w=torch.rand(b, generator=g),
        u1=torch.randn(bu, 4, generator=g),
        u2=torch.randn(bu, 4, generator=g),
    )


def step(net, peer, optimizer, batch, *, lambda_u: float, **options) -> StepLosses:
    """`train_step` with 3 classes, T 0.5, alpha 4 (and `options`), MixMatch's draws from seed 0."""
    draws = MixDraws(beta=np.random.default_rng(0), permutation=torch.Generator().manual_seed(0))
    options = StepOptions(**{"num_classes": 3, "T": 0.5, "alpha": 4.0} | options)
    return train_step(net, peer, optimizer, batch, lambda_u=lambda_u, options=options, draws=draws)


def stacked(losses: StepLosses) -> torch.Tensor:
    """(loss_x, loss_u, penalty, loss) as one tensor."""
    return torch.stack([losses.loss_x, losses.loss_u, losses.penalty, losses.loss])


def top1s(accs: Accuracies) -> list[float]:
    """[net1, net2, ensemble] top-1 accuracies."""
    return [accs.net1.top1, accs.net2.top1, accs.ensemble.top1]


def division(labeled: np.ndarray) -> Division:
    """A division with the given labeled mask (clean probability 0.9 labeled, 0.1 not)."""
    n = len(labeled)
    return Division(
        loss=np.zeros(n), loss_norm=np.zeros(n), clean_prob=np.where(labeled, 0.9, 0.1), labeled=labeled,
        mixture=Mixture(means=(0.1, 0.9), variances=(0.01, 0.01), weights=(0.5, 0.5), clean=0),
    )


def nets_for(ws: Workspace):
    """net1, net2 of the workspace and net1's optimiser."""
    nets = {i: ws.new_net(i) for i in NETS}
    return nets[1], nets[2], make_optimizer(nets[1], ws.config.train)


def state_copy(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same_state(net: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = net.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        assert torch.equal(after[key], before[key]), key
