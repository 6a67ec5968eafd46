"""One DivideMix epoch over one and over two processes on this CPU (gloo), from a streamed store.

Run from the repository root::

    .venv/bin/python benchmarks/bench_distributed.py                  # 3,000 images of 40 px, crop 32
    .venv/bin/python benchmarks/bench_distributed.py --images 6000 --repeats 3

It writes synthetic PNGs and list files in a temporary folder, prepares them as a folder data set
(the store on disk, streamed: `images.streamed`), then for each process count runs, through the
training stages' own launch path (`run_stage(..., spreads=True)`: torchrun's elastic agent), a
probe that builds the workspace and both networks as `run_train` does, warms them up one epoch,
and times `--repeats` DivideMix epochs (both divisions, both networks' steps, the test), each
process counting:

    epoch      median wall time of a DivideMix epoch (the writer's clock, after a barrier)
    read       bytes the process read from the training store during the epoch, against the
               rows its passes need (its share of the two eval passes and of every step's labeled
               and unlabeled samples, each row once: a step reads its rows once for both views)
    peak       the process's peak RSS (MB)

Then, on two gloo processes, what one step would add if the MixMatch partners were drawn from the
global batch rather than from each process's share (docs/distributed.md: the partners stay per
process): every process would need the whole step's mixed inputs, an all-gather of 4B images of
3 x S x S fp32 and their targets, timed at each `--partner-sides` (B 64 at 32 px, the CIFAR
protocol; B 32 at larger sides, Clothing1M's 224 and WebVision's 299), beside what the exact
objective does add: the prior penalty's all-reduce of C floats, forward and backward.

Figures only; nothing is asserted. GPU scaling is pending a multi-GPU machine (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from common import REPO, machine_line, workdir

PROBE = '''
import json, os, resource, time
import torch
from dividemix.method.codivide import LossHistory
from dividemix.run.stage import run_stage
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import make_optimizer
from dividemix.training.testing import epoch_tests
from dividemix.training.train import divide_for
from dividemix.training.warmup import warmup_epoch
from dividemix.training.workspace import NETS, Workspace

def body(config, params, paths):
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    cluster, train = ws.cluster, config.train
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    trainers = {i: cluster.data_parallel(nets[i]) for i in NETS}
    history = {i: LossHistory(1) for i in NETS}
    for i in NETS:
        warmup_epoch(trainers[i], optimizers[i], ws, 0, i, conf_penalty=False)
    store, epochs = ws.train_images, []
    for epoch in range(1, 1 + int(os.environ["BENCH_REPEATS"])):
        cluster.mean(torch.zeros(1))  # a barrier: every process starts the epoch together
        read, start = store.bytes_read, time.perf_counter()
        divisions = {i: divide_for(nets[i], ws, history[i], epoch, i) for i in NETS}
        rows = [dividemix_epoch(trainers[1], nets[2], optimizers[1], ws, divisions[2], epoch, 1),
                dividemix_epoch(trainers[2], nets[1], optimizers[2], ws, divisions[1], epoch, 2)]
        for net in nets.values():
            cluster.sync_buffers(net)
        epoch_tests([nets[1], nets[2]], ws)
        cluster.mean(torch.zeros(1))
        seconds = time.perf_counter() - start
        # the rows this process's passes need: its shares of the two eval passes and of every step's
        # labeled and unlabeled samples, replayed from the same draws (each row once)
        needed = 2 * len(cluster.shard(ws.n_train)) + sum(
            _step_rows(ws, divisions[peer], epoch, net) for net, peer in ((1, 2), (2, 1)))
        epochs.append({"seconds": seconds, "read": store.bytes_read - read, "needed": needed * store._row_bytes})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = paths.prepared.parent / f"bench_rank{cluster.rank}.json"
    out.write_text(json.dumps({"rank": cluster.rank, "world": cluster.world, "epochs": epochs, "peak_mb": peak}))

def _step_rows(ws, division, epoch, net_id):
    """The rows this process reads in one network's epoch: its share of each step's batches."""
    from dividemix.training.dividemix_epoch import split_tensors
    from dividemix.training.sampling import batches, endless_batches
    from dividemix.training.streams import EpochStreams

    labeled, unlabeled, _ = split_tensors(ws, division)
    streams, size = EpochStreams(ws.config.train.seed, epoch, net_id), ws.config.train.batch_size
    unlabeled_batches = endless_batches(unlabeled, size, streams.unlabeled()) if len(unlabeled) else None
    total = 0
    for x in batches(labeled, size, streams.order()):
        u = next(unlabeled_batches) if unlabeled_batches is not None else torch.empty(0, dtype=torch.int64)
        total += len(ws.cluster.split(x)) + len(ws.cluster.split(u))
    return total

run_stage("probe", [], ["prepared", "noisy"], body, spreads=True)
'''


GATHER = '''
import statistics, sys, time
import torch, torch.distributed as dist
rank, port, sides, repeats = int(sys.argv[1]), sys.argv[2], [int(x) for x in sys.argv[3].split(",")], int(sys.argv[4])
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)

def timed(fn):
    times = []
    for _ in range(repeats + 1):  # the first one warms the connections up
        dist.barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1e3

for side in sides:
    batch = 64 if side <= 32 else 32
    local = torch.randn(4 * batch // 2, 3, side, side)
    targets = torch.rand(4 * batch // 2, 50)
    out, out_t = local.new_empty((2 * local.numel(),)), targets.new_empty((2 * targets.numel(),))
    ms = timed(lambda: (dist.all_gather_single(out, local.reshape(-1)), dist.all_gather_single(out_t, targets.reshape(-1))))
    if rank == 0:
        mb = (out.numel() + out_t.numel()) * 4 / 1e6
        print(f"global partners, {side} px, B {batch}: all-gather of {mb:.1f} MB per step (each process) {ms:.1f} ms "
              f"(median of {repeats})", flush=True)
penalty = torch.rand(50)
ms = timed(lambda: (dist.all_reduce(penalty.clone()), dist.all_reduce(penalty.clone())))
if rank == 0:
    print(f"exact objective: the prior penalty's all-reduce of 50 floats, forward and backward {ms:.3f} ms per step",
          flush=True)
dist.destroy_process_group()
'''


def partner_gather(sides: str, repeats: int) -> None:
    """The per-step cost of global MixMatch partners on two gloo processes (`GATHER`)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", GATHER, str(rank), port, sides, str(repeats)], env=env)
             for rank in (0, 1)]
    for proc in procs:
        proc.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000, help="training images (default 3000)")
    parser.add_argument("--side", type=int, default=40, help="image side in pixels (default 40; crop 32)")
    parser.add_argument("--repeats", type=int, default=2, help="DivideMix epochs timed per process count (default 2)")
    parser.add_argument("--processes", default="1,2", help="process counts to compare (default 1,2)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--partner-sides", default="32,224,299",
                        help="image sides at which to time the global partners' gather (default 32,224,299)")
    parser.add_argument("--partner-repeats", type=int, default=5, help="gathers timed per side (default 5)")
    return parser.parse_args(argv)


def write_images(root: Path, n: int, side: int) -> None:
    """n training and 200 test PNGs (smooth colour fields: cheap to decode) and their lists."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    lines = {"train": [], "test": []}
    for i in range(n + 200):
        split = "train" if i < n else "test"
        label = int(rng.integers(0, 10))
        base = np.full((side, side, 3), 20 * label, dtype=np.uint8) + rng.integers(0, 40, (side, side, 3), dtype=np.uint8)
        Image.fromarray(base).save(root / "images" / f"{i}.png")
        lines[split].append(f"{i}.png {label}\n")
    for split, rows in lines.items():
        (root / f"{split}.txt").write_text("".join(rows))


def params_for(root: Path, processes: int) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] |= {"dataset": "folder", "root": str(root / "images"), "train_list": str(root / "train.txt"),
                       "test_list": str(root / "test.txt"), "image_size": 32, "resize": 36, "num_classes": 10}
    params["noise"] |= {"mode": "sym", "rate": 0.5}
    params["train"] |= {"device": "cpu", "batch_size": 64}
    params["distributed"] |= {"processes_per_machine": processes, "timeout_s": 600}
    return params


def prepare(root: Path) -> None:
    """The check, download and noise stages' own code on the scratch folder (no DVC needed)."""
    import importlib.util

    from dividemix.config import parse_config, select
    from dividemix.files.layout import Paths

    config, paths = parse_config(params_for(root, 1)), Paths.layout(root)
    for name in ("check", "download", "noise"):
        spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.body(config, select(config, module.PARAMS), paths)


def run(root: Path, processes: int, repeats: int) -> list[dict]:
    (root / "params.yaml").write_text(yaml.safe_dump(params_for(root, processes)))
    (root / "probe.py").write_text(PROBE)
    for old in (root / "data").glob("bench_rank*.json"):
        old.unlink()
    env = {**os.environ, "BENCH_REPEATS": str(repeats)}
    subprocess.run([sys.executable, "probe.py", "--prepared", "data/prepared", "--noisy", "data/noisy/labels.parquet"],
                   cwd=root, env=env, check=True)
    return [json.loads(path.read_text()) for path in sorted((root / "data").glob("bench_rank*.json"))]


def report(processes: int, ranks: list[dict], reference: float | None) -> float:
    epoch = statistics.median(e["seconds"] for e in ranks[0]["epochs"])
    speedup = f"  ({reference / epoch:.2f}x one process)" if reference else ""
    print(f"processes {processes}: DivideMix epoch {epoch:.2f} s (median of {len(ranks[0]['epochs'])}){speedup}")
    for rank in ranks:
        read = statistics.median(e["read"] for e in rank["epochs"]) / 1e6
        needed = statistics.median(e["needed"] for e in rank["epochs"]) / 1e6
        print(f"  rank {rank['rank']}: read {read:.1f} MB from the store per epoch, its passes need {needed:.1f} MB "
              f"({read / needed:.2f}x); peak RSS {rank['peak_mb']:.0f} MB")
    return epoch


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(machine_line())
    with workdir(args.keep) as root:
        write_images(root, args.images, args.side)
        prepare(root)
        reference = None
        for processes in (int(p) for p in args.processes.split(",")):
            epoch = report(processes, run(root, processes, args.repeats), reference)
            reference = reference or epoch
    partner_gather(args.partner_sides, args.partner_repeats)
    print(machine_line())


if __name__ == "__main__":
    main()
