"""Time whole DivideMix epochs at CIFAR-10 scale through the real engine (warm-up, co-divide, MixMatch).

Run from the repository root::

    .venv/bin/python benchmarks/bench_cifar_run.py                               # CPU smoke: 512 images
    python benchmarks/bench_cifar_run.py --device cuda --n-train 50000 --n-test 10000 --amp --channels-last

`bench_cifar.py` times one training step in isolation; this runs what `dvc repro` runs for a
CIFAR-10 preset (`run_warmup`, then `run_train`: eval passes, mixtures, divisions, MixMatch steps,
Parquet artifacts, checkpoints), on synthetic data in a temporary folder, and prints the wall
time of each epoch. It needs no download, no DVC and no Prefect.

The data are learnable, so that the division is a real one: each class has a random 3x32x32
template, an image is its class's template plus Gaussian pixel noise, and 50% symmetric label
noise (the reference's semantics) is injected. The labeled-set size therefore behaves as on
CIFAR (about half the set after warm-up), and the step count of an epoch with it. Accuracy on
these images means nothing; the figures are times.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "pipeline") not in sys.path:
    sys.path.insert(0, str(REPO / "pipeline"))

from dividemix.config import load_config, parse_config  # noqa: E402
from dividemix.datasets.prepared import write_prepared
from dividemix.datasets.registry import SPECS
from dividemix.files import artifacts  # noqa: E402
from dividemix.files.layout import Paths
from dividemix.noise.inject import symmetric_noise
from dividemix.training.train import run_train
from dividemix.training.warmup import run_warmup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--n-test", type=int, default=256)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--dividemix-epochs", type=int, default=2)
    parser.add_argument("--amp", action="store_true", help="train.amp (bf16 autocast)")
    parser.add_argument("--channels-last", action="store_true", help="train.channels_last")
    parser.add_argument("--compile", action="store_true", help="train.compile")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    return parser.parse_args(argv)


def synthetic_cifar(n: int, rng: np.random.Generator, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(templates), size=n)
    noise = rng.normal(0.0, 40.0, size=(n, 3, 32, 32))
    images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def make_run_folder(root: Path, n_train: int, n_test: int) -> Paths:
    paths = Paths.layout(root)
    rng = np.random.default_rng(0)
    templates = rng.uniform(0, 255, size=(10, 3, 32, 32))
    train_x, train_y = synthetic_cifar(n_train, rng, templates)
    test_x, test_y = synthetic_cifar(n_test, rng, templates)
    write_prepared(SPECS["cifar10"], paths.prepared, train_x, train_y, test_x, test_y)
    noisy = symmetric_noise(train_y, 0.5, 10, seed=1)
    artifacts.write_table(
        paths.noisy, "noisy_labels",
        {"sample_index": np.arange(n_train, dtype=np.int64), "noisy_label": noisy.astype(np.int64)},
        {"dataset": "cifar10", "mode": "sym", "rate": 0.5, "seed": 1},
    )
    return paths


def bench_config(args: argparse.Namespace):
    raw = load_config(REPO / "params.yaml").model_dump(mode="json")
    raw["data"]["dataset"] = "cifar10"
    raw["model"]["arch"] = "preact_resnet18"
    raw["train"].update(
        epochs=args.warmup_epochs + args.dividemix_epochs, warmup_epochs=args.warmup_epochs,
        lr_drop_epoch=150, rampup_epochs=16, device=args.device,
        amp=args.amp, channels_last=args.channels_last, compile=args.compile,
    )
    return parse_config(raw, source="bench_cifar_run")


class EpochClock:
    """A progress stream: the stages print one line per finished epoch; time between them."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                now = time.perf_counter()
                self.lines.append((now - self.last, line.strip()))
                self.last = now
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = bench_config(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        t0 = time.perf_counter()
        paths = make_run_folder(root, args.n_train, args.n_test)
        print(f"synthetic CIFAR-10: {args.n_train} train / {args.n_test} test images, 50% sym noise "
              f"({time.perf_counter() - t0:.1f} s to write)")
        print(f"device={args.device} amp={args.amp} channels_last={args.channels_last} compile={args.compile}")
        for name, run in (("warmup", run_warmup), ("train", run_train)):
            clock = EpochClock()
            start = time.perf_counter()
            run(config, paths, {}, stream=clock)
            total = time.perf_counter() - start
            for seconds, line in clock.lines:
                print(f"  {seconds:8.2f} s  {line}")
            print(f"{name}: {total:.2f} s in all (model build, data to device and checkpoints included)")
        divisions = artifacts.read_table(paths.artifacts / "divisions", "divisions", columns=["epoch", "net", "labeled"])
        print("labeled per epoch and net:", divisions.groupby(["epoch", "net"])["labeled"].sum().to_dict())
        print(f"artifacts on disk: {sum(p.stat().st_size for p in (root / 'artifacts').rglob('*') if p.is_file()) / 1e6:.1f} MB")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
