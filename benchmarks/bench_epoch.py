"""Time one DivideMix epoch on the default parameters and compare it with its compute limit.

Run from the repository root::

    .venv/bin/python benchmarks/bench_epoch.py                 # 5 DivideMix epochs, 3 repeats
    .venv/bin/python benchmarks/bench_epoch.py --epochs 2 --repeats 5 --device cpu
    .venv/bin/python benchmarks/bench_epoch.py --dvc-repro     # end-to-end `dvc repro` instead

Everything happens in a temporary directory; the repository is only read. `params.yaml` is read
through `dividemix.config.load_config`; `train.device` is forced to `cpu` unless `--device` is given.
`torch.set_num_threads` is left at its default. The script prints figures only; nothing is asserted.

What each figure means
----------------------
set-up
    prepare   `DATASETS[dataset].prepare` (digits: scikit-learn's bundled arrays, split, written).
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

dvc repro (`--dvc-repro`, instead of the above)
    first run     an end-to-end `dvc repro` of the pipeline in a fresh temporary git + DVC repository
                  (a copy of dvc.yaml, `--params` as params.yaml, stages/ and pipeline/), with
                  DVC_NO_ANALYTICS=1, DVC_SITE_CACHE_DIR inside it and .venv/bin first on PATH.
                  The stages import the copied `pipeline/` (PYTHONPATH), so the code DVC hashes is
                  the code that runs. Each stage's line: from its "Running stage" banner to the next
                  one (DVC's hashing and caching of its outputs included; the last stage to the end).
    second run    the same command again: nothing changed, so every stage is skipped (the cost of
                  DVC's checks alone).
    If the `report` stage's scripts are missing, `dvc repro evaluate` is timed instead (the
    output says so); `--dvc-target STAGE` times `dvc repro STAGE`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dividemix import artifacts, codivide
from dividemix.codivide import EVAL_BATCH, LossHistory, co_divide_one
from dividemix.config import Config, load_config, parse_config, select
from dividemix.data import DATASETS
from dividemix.engine import (
    CHECKPOINT_VERSION,
    GMM,
    NETS,
    Paths,
    Workspace,
    derived_seed,
    dividemix_epoch,
    division_rows,
    epoch_row,
    load_checkpoint,
    make_optimizer,
    merge_rows,
    mixture_rows,
    resolve_device,
    run_warmup,
    save_checkpoint,
    set_lr,
    ensemble_accuracy,
)
from dividemix.noise import noisy_label_file

REPO = Path(__file__).resolve().parents[1]
PARTS = ("eval", "gmm", "train1", "train2", "test", "io", "other")


# ------------------------------------------------------------------------------------ helpers
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="DivideMix epochs to time (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="compute-limit repeats per epoch (default 3)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="parameter file")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="overrides train.device (default cpu)")
    parser.add_argument("--dvc-repro", action="store_true",
                        help="time an end-to-end `dvc repro` in a temporary repository instead")
    parser.add_argument("--dvc-target", default=None,
                        help="stage for --dvc-repro (default: the whole pipeline, or evaluate if report is missing)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be at least 1")
    return args


def bench_config(params_path: Path, device: str) -> Config:
    """params.yaml through load_config, with train.device replaced."""
    raw = load_config(params_path).model_dump(mode="json")
    raw["train"]["device"] = device
    return parse_config(raw, source=str(params_path))


def all_keys(config: Config) -> list[str]:
    return [f"{section}.{key}" for section, values in config.model_dump().items() for key in values]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """perf_counter after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


def timed(device: torch.device, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, float]:
    start = clock(device)
    result = fn(*args, **kwargs)
    return result, clock(device) - start


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def machine_line() -> str:
    """CPUs and load: other processes on the machine inflate every figure (read them together)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average (1, 5, 15 min) {load}"


RSS_AFTER_IMPORTS_MB = peak_rss_mb()  # torch, scikit-learn, pyarrow: the floor under every figure


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench_dividemix_"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------- set-up
def prepare_and_warm_up(config: Config, paths: Paths, params: dict) -> dict[str, float]:
    """Prepare the data set, inject the configured noise, run the warm-up; seconds of each."""
    device = resolve_device(config.train.device)
    _, t_prepare = timed(device, DATASETS[config.data.dataset].prepare, paths.prepared)
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


# ------------------------------------------------------------------------- instrumentation
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
                        rows: tuple[dict, dict], accs: list[float], labeled: dict[int, int],
                        nets: dict, optimizers: dict, histories: dict) -> None:
    """What `run_train` writes after each epoch: four Parquet files and the checkpoint."""
    meta = {"params": params}
    noisy_np = ws.noisy_labels.cpu().numpy()
    folder = paths.artifacts
    artifacts.write_table(artifacts.epoch_file(folder / "divisions", epoch), "divisions",
                          division_rows(epoch, divisions, noisy_np), meta)
    artifacts.write_table(artifacts.epoch_file(folder / "mixtures", epoch), "mixtures",
                          mixture_rows(epoch, divisions), meta)
    artifacts.write_table(artifacts.epoch_file(folder / "losses", epoch), "losses", merge_rows(*rows), meta)
    artifacts.write_table(artifacts.epoch_file(folder / "epochs", epoch), "epochs",
                          epoch_row(epoch, "dividemix", accs, labeled), meta)
    save_checkpoint(paths.train_checkpoint, {
        "version": CHECKPOINT_VERSION,
        "fingerprint": {"params": params},
        "epoch": epoch,
        "nets": {str(i): nets[i].state_dict() for i in NETS},
        "optimizers": {str(i): optimizers[i].state_dict() for i in NETS},
        "history": {str(i): histories[i].state() for i in NETS},
    })


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
                             p_threshold=train.p_threshold, seed=derived_seed(train.seed, epoch, i, GMM))
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


# ----------------------------------------------------------------------------- compute limit
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


# ------------------------------------------------------------------------------------ report
def epoch_line(r: EpochResult) -> str:
    p = r.parts
    return (f"epoch {r.epoch:3d}  total {r.total:7.3f}s | eval {p['eval']:.3f} gmm {p['gmm']:.3f} "
            f"train1 {p['train1']:.3f} train2 {p['train2']:.3f} test {p['test']:.3f} io {p['io']:.3f} "
            f"other {p['other']:.3f} | labeled_by_net1 {r.labeled[1]} labeled_by_net2 {r.labeled[2]} | "
            f"limit {r.limit:.3f}s ratio {r.ratio:.2f}")


def check_trace(r: EpochResult, ws: Workspace) -> str:
    no_grad, grad, steps = expected_forwards(r.labeled, ws.n_train, len(ws.test_images), ws.config.train.batch_size)
    seen_no_grad = sum(not f.grad for f in r.trace)
    seen_grad = sum(f.grad for f in r.trace)
    verdict = "matches" if (seen_no_grad, seen_grad) == (no_grad, grad) else (
        f"DIFFERS from the analytic count ({no_grad} no-grad, {grad} forward+backward)")
    return f"          trace: {steps} train steps, {trace_summary(r.trace)}; {verdict}"


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
            print(check_trace(result, ws), flush=True)
        print_summary(setup, results, ws.device)
    return 0


# -------------------------------------------------------------------------------- dvc repro
def report_stage_present(repo: Path = REPO) -> bool:
    return (repo / "stages/report.py").exists() and (repo / "pipeline/dividemix/report.py").exists()


def make_dvc_repo(root: Path, params: Path) -> dict[str, str]:
    """A fresh git + DVC repository holding a copy of the pipeline; returns the environment to run in."""
    for name in ("dvc.yaml",):
        shutil.copy2(REPO / name, root / name)
    shutil.copy2(params, root / "params.yaml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("stages", "pipeline", "labels"):  # labels/: a dependency of the noise stage
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    env = dict(
        os.environ,
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(root / ".dvc-site-cache"),
        PATH=f"{REPO / '.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(root / "pipeline"),  # run the copied library, the one DVC hashes
    )
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, env=env, check=True)
    return env


@dataclass
class CommandTiming:
    rc: int
    seconds: float
    stages: dict[str, float]  # seconds from each "Running stage 'X'" line to the next line of that kind


def timed_command(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> CommandTiming:
    """Run `command`, its output into `log`; time it, and each DVC stage by when its banner appeared."""
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        for line in process.stdout:
            out.write(line)
            if line.startswith("Running stage '"):
                marks.append((line.split("'")[1], time.perf_counter()))
        rc = process.wait()
    end = time.perf_counter()
    ends = [t for _, t in marks[1:]] + [end]
    stages = {name: stop - begin for (name, begin), stop in zip(marks, ends)}
    return CommandTiming(rc, end - start, stages)


def bench_dvc_repro(args: argparse.Namespace) -> int:
    """Time `dvc repro` twice in a fresh repository; returns the first run's exit status."""
    target = args.dvc_target
    if target is None and not report_stage_present():
        print("note: stages/report.py or pipeline/dividemix/report.py is missing; timing `dvc repro evaluate` "
              "(every stage but report) instead of the whole pipeline")
        target = "evaluate"
    command = ["dvc", "repro", *([target] if target else [])]
    with workdir(args.keep) as root:
        env = make_dvc_repo(root, args.params)
        print(f"machine: {machine_line()}", flush=True)
        first = timed_command(command, root, env, root / "repro_1.log")
        if first.rc != 0:
            print(f"`{' '.join(command)}` failed (exit {first.rc}); its log ends:")
            print("\n".join((root / "repro_1.log").read_text().splitlines()[-30:]))
            return first.rc
        second = timed_command(command, root, env, root / "repro_2.log")
        print("\n=== dvc repro ===")
        print(f"command                 {' '.join(command)} (params {args.params}, in a fresh git+dvc copy)")
        print(f"first run (everything)  {first.seconds:8.2f} s")
        for name, seconds in first.stages.items():
            print(f"  {name:<21} {seconds:8.2f} s")
        print(f"second run (no-op)      {second.seconds:8.2f} s   exit {second.rc}, stages run: {len(second.stages)}")
        print(f"peak RSS of a stage     {peak_rss_mb(resource.RUSAGE_CHILDREN):8.1f} MB   (largest child process)")
        print(f"machine                 {machine_line()}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    status = bench_dvc_repro(args) if args.dvc_repro else bench_epochs(args)
    print(f"benchmark wall time     {time.perf_counter() - start:8.2f} s")
    sys.exit(1 if status else 0)


if __name__ == "__main__":
    main()
