"""Time one DivideMix epoch on the default parameters and compare it with its compute limit.

Run from the repository root::

    .venv/bin/python benchmarks/bench_epoch.py                 # 5 DivideMix epochs, 3 repeats
    .venv/bin/python benchmarks/bench_epoch.py --epochs 2 --repeats 5 --device cpu

Everything happens in a temporary directory; the repository is only read. `params.yaml` is read
through `dividemix.config.load_config`; `train.device` is forced to `cpu` unless `--device` is given.
`torch.set_num_threads` is left at its default. The script prints figures only; nothing is asserted.

What each figure means
----------------------
set-up
    prepare   `SPECS[dataset].prepare` (digits: scikit-learn's bundled arrays, split, written).
    noise     `noisy_label_file` with the configured noise (mode, rate, seed).
    warm-up   `run_warmup`: `train.warmup_epochs` cross-entropy epochs of both networks, their test
              accuracy each epoch, the warm-up artifacts and checkpoint.

one line per DivideMix epoch (the library pieces called in `run_train`'s order)
    eval      `per_sample_loss` of net1 + net2: no-grad passes over the whole train set, batch 1024.
    gmm       `fit_mixture` of net1 + net2: the two-component GaussianMixture on the normalised losses.
    train1    `dividemix_epoch` of net1 (on net2's division, net2 as peer).
    train2    `dividemix_epoch` of net2 (on net1's division, the updated net1 as peer).
    test      `ensemble_accuracy` of both networks and their ensemble on the test set.
    io        the epoch's four Parquet artifacts and the checkpoint, written as `run_train` does.
    other     the rest of the epoch's wall time (loss normalisation, history, Division records).
    total     wall time of the whole epoch (the sum of all of the above).
    labeled   how many training samples each network's division calls clean (`labeled_by_netK`:
              the division made by netK, which trains the *other* network).
    limit     the compute limit of this epoch (below), median over `--repeats`.
    ratio     total / limit: how many times slower the epoch is than its bare network compute.

compute limit
    While the epoch runs, a forward pre-hook on both networks records every forward pass: which
    network, its train/eval mode, whether gradients were on, its input's shape and strides. Per
    train step that is co_refine's 2 no-grad forwards of B labeled images, co_guess's 2 forwards
    of the net and 2 of the peer on B' unlabeled images, and one forward+backward of the mixed
    2B+2B' images;
    plus the eval passes over the train set (batch 1024) and the test passes, for both networks.
    The recorded trace is checked against that analytic count. The limit replays exactly this
    trace in a tight loop on copies of the two networks: the same passes, at the same batch sizes
    and modes, on random normal tensors already in memory (no augmentation, no indexing, no
    mixing); each gradient pass does forward + cross-entropy + backward + an SGD step (same
    momentum and weight decay). It is measured right after the epoch, in the same process.
    The random tensors copy each real input's strides, not only its shape: an augmented batch of
    one-channel images comes out channels-last (NHWC) and PyTorch then runs the whole network
    channels-last, which on a CPU is much faster than NCHW; the trace line counts such inputs.

summary
    median epoch time, each part's median seconds and median share of its epoch, the median
    compute limit, the ratio (median of the per-epoch ratios, and the ratio of the medians), and
    the process's peak resident memory (`ru_maxrss`, MB; plus CUDA's peak allocation on a GPU) next
    to the peak right after the imports (torch alone accounts for most of it). PyTorch exposes no
    allocator statistics for the CPU, so none are printed there. `machine` gives the CPU count and
    the load average: other processes sharing the cores inflate every time (and the ratio only
    partly cancels it), so compare figures taken at a similar, low load.

`benchmarks/bench_repro.py` times an end-to-end `dvc repro` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common import REPO, clock, machine_line, peak_rss_mb, timed, workdir
from compute_limit import ComputeLimit, Forward, check_trace, record_forwards
from dividemix.config import Config, load_config, parse_config, select
from dividemix.datasets.registry import SPECS
from dividemix.device import resolve_device
from dividemix.files.layout import Paths
from dividemix.method import codivide
from dividemix.method.codivide import LossHistory, co_divide_one
from dividemix.noise.inject import noisy_label_file
from dividemix.training.checkpoint import load_checkpoint, nets_state
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import make_optimizer
from dividemix.training.resume import Resume
from dividemix.training.rows import division_rows, epoch_row, merge_rows, mixture_rows
from dividemix.training.streams import EpochStreams
from dividemix.training.testing import Accuracies, EpochTests, ensemble_accuracy
from dividemix.training.train import commit_epoch
from dividemix.training.warmup import run_warmup
from dividemix.training.workspace import NETS, Workspace

PARTS = ("eval", "gmm", "train1", "train2", "test", "io", "other")
RSS_AFTER_IMPORTS_MB = peak_rss_mb()  # torch, scikit-learn, pyarrow: the floor under every figure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="DivideMix epochs to time (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="compute-limit repeats per epoch (default 3)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="parameter file")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="overrides train.device (default cpu)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    return parser.parse_args(argv)


def bench_config(params_path: Path, device: str) -> Config:
    """params.yaml through load_config, with train.device replaced."""
    raw = load_config(params_path).model_dump(mode="json")
    raw["train"]["device"] = device
    return parse_config(raw, source=str(params_path))


def all_keys(config: Config) -> list[str]:
    return [f"{section}.{key}" for section, values in config.model_dump().items() for key in values]


# ------------------------------------------------------------------------------------- set-up
def prepare_and_warm_up(config: Config, paths: Paths, params: dict) -> dict[str, float]:
    """Prepare the data set, inject the configured noise, run the warm-up; seconds of each."""
    device = resolve_device(config.train.device)
    _, t_prepare = timed(device, SPECS[config.data.dataset].prepare, paths.prepared)
    noise = config.noise
    _, t_noise = timed(device, noisy_label_file, dataset=config.data.dataset, prepared=paths.prepared,
                       out=paths.noisy, mode=noise.mode, rate=noise.rate, seed=noise.seed)
    _, t_warmup = timed(device, run_warmup, config, paths, params)
    return {"prepare": t_prepare, "noise": t_noise, "warm-up": t_warmup}


def load_after_warmup(config: Config, paths: Paths) -> tuple[Workspace, dict, dict]:
    """The workspace, both networks and their optimizers as `run_train` starts them (no resume)."""
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], config.train) for i in NETS}
    state = load_checkpoint(paths.warmup_checkpoint, ws.device)
    for i in NETS:
        nets[i].load_state_dict(state["nets"][str(i)])
        optimizers[i].load_state_dict(state["optimizers"][str(i)])
    return ws, nets, optimizers


@contextlib.contextmanager
def time_codivide(times: dict[str, float], device: torch.device) -> Iterator[None]:
    """Wrap codivide's `per_sample_loss` and `fit_mixture` so `co_divide_one` reports their seconds."""
    originals = codivide.per_sample_loss, codivide.fit_mixture

    def wrap(fn: Callable, part: str) -> Callable:
        def wrapper(*args, **kwargs):
            result, seconds = timed(device, fn, *args, **kwargs)
            times[part] += seconds
            return result
        return wrapper

    codivide.per_sample_loss = wrap(originals[0], "eval")
    codivide.fit_mixture = wrap(originals[1], "gmm")
    try:
        yield
    finally:
        codivide.per_sample_loss, codivide.fit_mixture = originals


# ------------------------------------------------------------------------------------ epochs
@dataclass
class EpochResult:
    epoch: int
    parts: dict[str, float]
    total: float
    labeled: dict[int, int]
    trace: list[Forward] = field(repr=False)
    limit_runs: list[float] = field(default_factory=list)

    @property
    def limit(self) -> float:
        return statistics.median(self.limit_runs)

    @property
    def ratio(self) -> float:
        return self.total / self.limit


def write_epoch_outputs(ws: Workspace, paths: Paths, params: dict, epoch: int, divisions: dict,
                        rows: tuple[dict, dict], accs: Accuracies, labeled: dict[int, int],
                        nets: dict, optimizers: dict, histories: dict) -> None:
    """What `run_train` writes after each epoch (its `commit_epoch`): four Parquet files, the checkpoint."""
    tables = {"divisions": division_rows(epoch, divisions, ws.noisy_labels.cpu().numpy()),
              "mixtures": mixture_rows(epoch, divisions), "losses": merge_rows(*rows),
              "epochs": epoch_row(epoch, "dividemix", EpochTests(accs), labeled)}
    history = {"history": {str(i): histories[i].state() for i in NETS}}
    state = nets_state({"params": params}, epoch, nets, optimizers, history)
    commit_epoch(paths, Resume(paths.resume / "bench", {}), epoch, tables, state, {"params": params})


def dividemix_epoch_timed(ws: Workspace, nets: dict, optimizers: dict, histories: dict, epoch: int,
                          paths: Paths, params: dict) -> EpochResult:
    """One epoch of `run_train`'s loop body, each library call timed, every forward recorded."""
    train, device = ws.config.train, ws.device
    parts = dict.fromkeys(PARTS, 0.0)
    trace: list[Forward] = []
    start = clock(device)
    with record_forwards(nets, trace), time_codivide(parts, device):
        divisions = {
            i: co_divide_one(nets[i], ws.train_images, ws.noisy_labels, histories[i],
                             p_threshold=train.p_threshold, seed=EpochStreams(train.seed, epoch, i).mixture_seed())
            for i in NETS
        }
        rows1, parts["train1"] = timed(device, dividemix_epoch, nets[1], nets[2], optimizers[1], ws,
                                       divisions[2], epoch, 1)
        rows2, parts["train2"] = timed(device, dividemix_epoch, nets[2], nets[1], optimizers[2], ws,
                                       divisions[1], epoch, 2)
        accs, parts["test"] = timed(device, ensemble_accuracy, [nets[1], nets[2]], ws)
    labeled = {i: int(divisions[i].labeled.sum()) for i in NETS}
    _, parts["io"] = timed(device, write_epoch_outputs, ws, paths, params, epoch, divisions, (rows1, rows2),
                           accs, labeled, nets, optimizers, histories)
    total = clock(device) - start
    parts["other"] = total - sum(parts[p] for p in PARTS if p != "other")
    return EpochResult(epoch, parts, total, labeled, trace)


# ------------------------------------------------------------------------------------ report
def epoch_line(r: EpochResult) -> str:
    p = r.parts
    return (f"epoch {r.epoch:3d}  total {r.total:7.3f}s | eval {p['eval']:.3f} gmm {p['gmm']:.3f} "
            f"train1 {p['train1']:.3f} train2 {p['train2']:.3f} test {p['test']:.3f} io {p['io']:.3f} "
            f"other {p['other']:.3f} | labeled_by_net1 {r.labeled[1]} labeled_by_net2 {r.labeled[2]} | "
            f"limit {r.limit:.3f}s ratio {r.ratio:.2f}")


def print_summary(setup: dict[str, float], results: list[EpochResult], device: torch.device) -> None:
    totals = [r.total for r in results]
    limits = [r.limit for r in results]
    median_total = statistics.median(totals)
    print("\n=== summary ===")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(results)} DivideMix epochs")
    print("set-up: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in setup.items()))
    print(f"median epoch time      {median_total:8.3f} s   (min {min(totals):.3f}, max {max(totals):.3f})")
    for part in PARTS:
        seconds = statistics.median(r.parts[part] for r in results)
        share = statistics.median(r.parts[part] / r.total for r in results)
        print(f"  {part:<8} median {seconds:8.3f} s   share {share:6.1%}")
    print(f"median compute limit   {statistics.median(limits):8.3f} s   (min {min(limits):.3f}, max {max(limits):.3f})")
    print(f"ratio epoch / limit    {statistics.median(r.ratio for r in results):8.2f}     (median of per-epoch ratios; "
          f"ratio of medians {median_total / statistics.median(limits):.2f})")
    print(f"peak RSS               {peak_rss_mb():8.1f} MB   (of which {RSS_AFTER_IMPORTS_MB:.1f} MB after imports)")
    print(f"machine                {machine_line()}")
    if device.type == "cuda":
        print(f"peak CUDA allocated    {torch.cuda.max_memory_allocated(device) / 2**20:8.1f} MB")


# ------------------------------------------------------------------------------ epoch bench
def bench_epochs(args: argparse.Namespace) -> int:
    config = bench_config(args.params, args.device)
    params = select(config, all_keys(config))
    with workdir(args.keep) as root:
        paths = Paths.layout(root)
        setup = prepare_and_warm_up(config, paths, params)
        print(f"machine: {machine_line()}")
        print("set-up: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in setup.items()), flush=True)
        ws, nets, optimizers = load_after_warmup(config, paths)
        histories = {i: LossHistory(config.train.loss_history) for i in NETS}
        results = []
        for k in range(args.epochs):
            epoch = config.train.warmup_epochs + k
            result = dividemix_epoch_timed(ws, nets, optimizers, histories, epoch, paths, params)
            result.limit_runs = ComputeLimit(ws, nets, result.trace).run(args.repeats)
            results.append(result)
            print(epoch_line(result), flush=True)
            print(check_trace(result.trace, result.labeled, ws), flush=True)
        print_summary(setup, results, ws.device)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    status = bench_epochs(args)
    print(f"benchmark wall time     {time.perf_counter() - start:8.2f} s")
    sys.exit(1 if status else 0)


if __name__ == "__main__":
    main()
