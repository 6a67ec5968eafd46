"""Time the CIFAR model (PreAct ResNet-18) through DivideMix's training step, on synthetic CIFAR-sized data.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cifar.py                      # CPU, 512 images, 3 timed steps per variant
    .venv/bin/python benchmarks/bench_cifar.py --device cuda --steps 50 --warmup-steps 10 --n-train 50000
    .venv/bin/python benchmarks/bench_cifar.py --variants fp32 bf16+cl    # a subset of the four variants

Needs only torch and numpy (and the `dividemix` package from `pipeline/`, put on sys.path here):
no Prefect, no DVC, no data download. Prints figures; asserts nothing.

What it does
------------
data        `--n-train` random images 3x32x32 (standard normal: the network's cost does not depend
            on pixel values), random labels and clean probabilities, already on the device.
variants    PreAct ResNet-18 (`dividemix.method.models.preact_resnet18`) with `train.channels_last` off/on
            and `train.amp` (bf16 autocast) off/on: fp32, fp32+cl, bf16, bf16+cl.
step        `dividemix.method.mixmatch.train_step` (the CIFAR protocol), exactly as the engine calls it:
            B labeled + B unlabeled samples, two "augmentations" each (here two random index draws,
            no augmentation cost), net in train mode, peer in eval mode. Per step that is 6 no-grad
            forwards of B images (co-refine 2, co-guess 2 + 2 of the peer) and one forward+backward
            of the 4B mixed images, plus an SGD step. `--warmup-steps` untimed first (cuDNN autotuning,
            allocator), then `--steps` timed; each step is synchronised (CUDA) and timed alone.
eval        a no-grad eval-mode pass over all `--n-train` images in batches of `--eval-batch`
            (what co-divide's per-sample loss and the test pass cost), median of `--eval-repeats`.
figures     step ms (median, min), mixed images/s (4B / median step), step GFLOP/s (the FLOPs
            below / median step), eval ms and images/s; parameter count; forward GFLOPs per 32x32
            image counted by torch.utils.flop_counter.FlopCounterMode (a multiply-add = 2 FLOPs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "pipeline") not in sys.path:
    sys.path.insert(0, str(REPO / "pipeline"))

from dividemix.method.losses import StepLosses
from dividemix.method.mixmatch import MixDraws, StepBatch, StepOptions, train_step
from dividemix.method.models import preact_resnet18  # noqa: E402

VARIANTS = {"fp32": (False, False), "fp32+cl": (False, True), "bf16": (True, False), "bf16+cl": (True, True)}
STEP_PASSES = {"no_grad_forwards": 6, "mixed_multiplier": 4}  # per step: 6 x B no-grad, 4B forward+backward


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (or cuda:N)")
    parser.add_argument("--n-train", type=int, default=512, help="synthetic training images (default 512)")
    parser.add_argument("--batch", type=int, default=64, help="B, labeled batch (+ B unlabeled); default 64")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per variant (default 3)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed train steps first (default 1)")
    parser.add_argument("--eval-batch", type=int, default=512, help="batch of the eval pass (default 512)")
    parser.add_argument("--eval-repeats", type=int, default=2, help="timed eval passes per variant (default 2)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if min(args.n_train, args.batch, args.steps, args.eval_batch, args.eval_repeats) < 1 or args.warmup_steps < 0:
        parser.error("sizes and counts must be positive")
    if 2 * args.batch > args.n_train:
        parser.error("--n-train must hold at least 2 x --batch images")
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(num_classes: int) -> int:
    """FLOPs of one forward pass of one 3x32x32 image (FlopCounterMode: a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = preact_resnet18(num_classes).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops()


def step_call(net, peer, optimizer, batch, *, amp: bool, num_classes: int, draws: MixDraws) -> StepLosses:
    options = StepOptions(num_classes=num_classes, T=0.5, alpha=4.0, amp=amp)
    return train_step(net, peer, optimizer, batch, lambda_u=25.0, options=options, draws=draws)


@dataclass
class Result:
    variant: str
    step_s: list[float]
    eval_s: list[float]


def bench_variant(name: str, args: argparse.Namespace, device: torch.device, data: dict) -> Result:
    amp, channels_last = VARIANTS[name]
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = preact_resnet18(args.num_classes).to(device, memory_format=fmt)
    peer = preact_resnet18(args.num_classes).to(device, memory_format=fmt)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    images = data["images"].contiguous(memory_format=fmt)
    draws = MixDraws(beta=np.random.default_rng(0), permutation=torch.Generator().manual_seed(0))
    order = torch.Generator().manual_seed(1)
    b, n = args.batch, args.n_train

    def batch() -> StepBatch:
        idx = torch.randperm(n, generator=order)[: 4 * b].to(device) if 4 * b <= n else \
            torch.randint(0, n, (4 * b,), generator=order).to(device)
        lab, unl = idx[:b], idx[b: 2 * b]
        # two "augmentations": the same images in another order within the batch (no augmentation cost)
        return StepBatch(x1=images[lab], x2=images[lab.flip(0)], y=data["labels"][lab], w=data["w"][lab],
                         u1=images[unl], u2=images[unl.flip(0)])

    net.train()
    step_s = []
    for i in range(args.warmup_steps + args.steps):
        step_batch = batch()
        sync(device)
        start = time.perf_counter()
        step_call(net, peer, optimizer, step_batch, amp=amp, num_classes=args.num_classes, draws=draws)
        sync(device)
        if i >= args.warmup_steps:
            step_s.append(time.perf_counter() - start)

    eval_s = []
    net.eval()
    context = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
    for _ in range(args.eval_repeats + 1):  # the first pass is untimed (autotuning)
        sync(device)
        start = time.perf_counter()
        with torch.no_grad(), context:
            for chunk in images.split(args.eval_batch):
                net(chunk)
        sync(device)
        eval_s.append(time.perf_counter() - start)
    return Result(name, step_s, eval_s[1:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the reference (fixed input sizes)

    gen = torch.Generator().manual_seed(0)
    data = {
        "images": torch.randn(args.n_train, 3, 32, 32, generator=gen).to(device),
        "labels": torch.randint(0, args.num_classes, (args.n_train,), generator=gen).to(device),
        "w": torch.rand(args.n_train, generator=gen).to(device),
    }
    params = sum(p.numel() for p in preact_resnet18(args.num_classes).parameters())
    flops = forward_flops(args.num_classes)
    b = args.batch
    step_flops = flops * (STEP_PASSES["no_grad_forwards"] * b + 3 * STEP_PASSES["mixed_multiplier"] * b)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, " \
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    print(f"device      {device} ({where}); torch {torch.__version__}")
    print(f"model       preact_resnet18, {params:,} parameters, {args.num_classes} classes")
    print(f"flops       {flops / 1e9:.3f} GFLOPs per 32x32 image forward (FlopCounterMode, multiply-add = 2)")
    print(f"step        B = {b}: 6 x {b} no-grad forwards + forward+backward of {4 * b} mixed images "
          f"= {step_flops / 1e9:.1f} GFLOP (backward = 2 x forward)")
    print(f"data        {args.n_train} synthetic 3x32x32 images; {args.warmup_steps} untimed + {args.steps} timed "
          f"steps; eval batch {args.eval_batch}")
    print()
    header = (f"{'variant':<8} {'amp':>5} {'ch_last':>7} {'step ms':>9} {'min ms':>9} {'mixed img/s':>11} "
              f"{'GFLOP/s':>8} {'eval ms':>9} {'eval img/s':>10}")
    print(header)
    results = []
    for name in args.variants:
        result = bench_variant(name, args, device, data)
        results.append(result)
        amp, cl = VARIANTS[name]
        step, eval_ = statistics.median(result.step_s), statistics.median(result.eval_s)
        print(f"{name:<8} {str(amp).lower():>5} {str(cl).lower():>7} {1e3 * step:9.1f} {1e3 * min(result.step_s):9.1f} "
              f"{4 * b / step:11.1f} {step_flops / step / 1e9:8.1f} {1e3 * eval_:9.1f} {args.n_train / eval_:10.1f}",
              flush=True)
    if device.type == "cuda":
        print(f"\npeak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    base = {r.variant: statistics.median(r.step_s) for r in results}
    if "fp32" in base:
        print()
        for name, step in base.items():
            if name != "fp32":
                print(f"{name:<8} step speed-up over fp32: {base['fp32'] / step:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
