"""P processes optimise one process's objective: one DivideMix step (and one warm-up step) on P = 2
and 3 gloo processes, from the same weights and draws, applies the gradient one process applies
to the same global batch, to float tolerance. Batches not divisible by 3 and a short last batch
(smaller than the processes: repeats that must weigh nothing) included.

The network has no BatchNorm (its statistics per process are plain data parallel's named
departure) and lambda is 1 (the MixMatch partners stay per process: the other named departure),
so what is left to differ is exactly the objective: the weight of each loss term by the share of
the samples it averages over and the prior penalty on the global batch's mean prediction.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from test_distributed import free_port

pytestmark = pytest.mark.stage  # gloo processes

# (protocol, labeled batch, unlabeled batch): B = 7 divides by neither 2 nor 3; a last labeled
# batch of 2 is smaller than 3 processes; an empty unlabeled batch (everything judged clean).
CASES = [("cifar", 7, 7), ("cifar", 2, 7), ("cifar", 5, 0), ("clothing1m", 7, 7), ("clothing1m", 2, 7)]
WARMUP_CASES = [7, 2]

WORKER = r'''
import sys
import numpy as np, torch
from torch import nn
from dividemix.cluster.group import Cluster
from dividemix.method.mixmatch import MixDraws, StepBatch, StepOptions, train_step
from dividemix.training.shares import share_of, spread_of
from dividemix.training.warmup import warmup_step

CASES, WARMUP_CASES = {cases!r}, {warmup_cases!r}


class One:  # lambda = max(l, 1 - l) = 1: each row is its own mix (partners stay per process)
    def beta(self, a, b):
        return 1.0


def net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def data(seed, b, u):
    g = torch.Generator().manual_seed(seed)
    img = lambda n: torch.randn(n, 1, 8, 8, generator=g)
    return dict(x1=img(b), x2=img(b), y=torch.randint(0, 3, (b,), generator=g), w=torch.rand(b, generator=g),
                u1=img(u), u2=img(u))


def step(cluster, protocol, b, u, case):
    model, peer = net(1), net(2)
    trainer = cluster.data_parallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)  # the applied update is minus the gradient
    d = data(10 + case, b, u)
    xs, us = cluster.split(torch.arange(b)), cluster.split(torch.arange(u))
    batch = StepBatch(x1=d["x1"][xs], x2=d["x2"][xs], y=d["y"][xs], w=d["w"][xs], u1=d["u1"][us], u2=d["u2"][us],
                      spread=spread_of(cluster, torch.arange(b), torch.arange(u)))
    options = StepOptions(num_classes=3, T=0.5, alpha=4.0, protocol=protocol)
    losses = train_step(trainer, peer, opt, batch, lambda_u=25.0, options=options,
                        draws=MixDraws(beta=One(), permutation=torch.Generator().manual_seed(0)))
    record = cluster.mean(torch.stack([losses.loss_x, losses.loss_u, losses.penalty, losses.loss]))
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), record


def warm(cluster, b, case):
    model = net(3)
    trainer = cluster.data_parallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    d = data(20 + case, b, 0)
    xs = cluster.split(torch.arange(b))
    losses = warmup_step(trainer, opt, d["x1"][xs], d["y"][xs], conf_penalty=True,
                         share=share_of(cluster, torch.arange(b)))
    record = cluster.mean(torch.stack([losses.loss_x, losses.penalty, losses.loss]))
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), record


def main(rank, world, port, out):
    cluster = Cluster()
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{{port}}", rank=rank,
                                             world_size=world)
        cluster = Cluster(rank=rank, world=world)
    results = {{}}
    for case, (protocol, b, u) in enumerate(CASES):
        results[f"step{{case}}"], results[f"losses{{case}}"] = step(cluster, protocol, b, u, case)
    for case, b in enumerate(WARMUP_CASES):
        results[f"warm{{case}}"], results[f"warm_losses{{case}}"] = warm(cluster, b, case)
    if rank == 0:
        np.savez(out, **{{k: v.numpy() for k, v in results.items()}})
    if world > 1:
        torch.distributed.destroy_process_group()


main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
'''


def run_processes(tmp_path, world: int) -> dict:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(cases=CASES, warmup_cases=WARMUP_CASES))
    out, port = tmp_path / f"world{world}.npz", free_port()
    env_threads = {"OMP_NUM_THREADS": "1"}
    import os

    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(world), str(port), str(out)],
                              env=os.environ | env_threads, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for rank in range(world)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    return dict(np.load(out))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return run_processes(tmp_path_factory.mktemp("one"), 1)


@pytest.mark.parametrize("world", [2, 3])
def test_p_processes_apply_the_gradient_of_one_process(one_process, tmp_path, world):
    spread = run_processes(tmp_path, world)
    for case, (protocol, b, u) in enumerate(CASES):
        alone = one_process[f"step{case}"]
        # the update changed the weights (a step that applied nothing would pass trivially)
        assert np.abs(alone - torch.cat([p.detach().reshape(-1) for p in _net(1).parameters()]).numpy()).max() > 1e-3
        np.testing.assert_allclose(spread[f"step{case}"], alone, rtol=1e-5, atol=2e-6,
                                   err_msg=f"P={world}: {protocol} step, B={b}, unlabeled {u}")
        # the recorded terms (the mean over processes of their weighted parts) are the global batch's
        np.testing.assert_allclose(spread[f"losses{case}"], one_process[f"losses{case}"], rtol=1e-5, atol=1e-6)
    for case, b in enumerate(WARMUP_CASES):
        np.testing.assert_allclose(spread[f"warm{case}"], one_process[f"warm{case}"], rtol=1e-5, atol=2e-6,
                                   err_msg=f"P={world}: warm-up step, batch {b}")
        np.testing.assert_allclose(spread[f"warm_losses{case}"], one_process[f"warm_losses{case}"], rtol=1e-5,
                                   atol=1e-6)


def _net(seed):
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
