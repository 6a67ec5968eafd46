"""Time `dividemix diff` on two long synthetic runs: wall time and peak memory.

Run from the repository root::

    .venv/bin/python benchmarks/bench_diff.py                    # 300 epochs, 50,000 samples, 3 repeats
    .venv/bin/python benchmarks/bench_diff.py --dir /tmp/bench   # keep the synthetic runs there (reused)
    .venv/bin/python benchmarks/bench_diff.py --epochs 30 --samples 5000 --repeats 1   # a quick look

What it builds: two runs, A and B, each a pipeline root with `artifacts/divisions/epoch_XXX.parquet`
(one file per epoch, the DIVISIONS schema, written with `dividemix.files.artifacts.write_table` exactly
like the train stage: both networks, every training sample) plus `data/prepared/train_truth.npy`
and `data/noisy/labels.parquet`, so that the diff also computes precision, recall and AUC of each
side. Defaults: 300 epochs x 2 networks x 50,000 samples per run, 60 million rows across both.
Run B is run A with about 5% of the labeled flags flipped and the clean probabilities jittered, so
samples move in every epoch. Written to a temporary folder unless `--dir` is given (a folder that
already holds runs of the same size is reused; the generation time is printed, not benchmarked).

What it measures: `dividemix diff A B` (the table on the terminal, nothing written), run as a
child process `--repeats` times: the median wall time (imports included), and the peak resident
memory of the children (`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`, the largest of them).
`--with-out` also times everything a diff can write: `--by-class --out per_sample.parquet --html
diff.html` (30 million per-sample rows, the per-class table and the page). Targets:
<= 30 s and <= 2 GB on this project's 2-core machine. The load average is printed: other
processes on the cores slow every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dividemix.files import artifacts

NUM_CLASSES = 10


def write_run(root: Path, epochs: int, samples: int, *, perturb: bool, seed: int = 0) -> None:
    """One synthetic run under `root`; B (`perturb`) is A with some labeled flags flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, NUM_CLASSES, samples)
    noisy = np.where(rng.random(samples) < 0.5, rng.integers(0, NUM_CLASSES, samples), truth)
    (root / "data/prepared").mkdir(parents=True, exist_ok=True)
    np.save(root / "data/prepared/train_truth.npy", truth)
    artifacts.write_table(root / "data/noisy/labels.parquet", "noisy_labels",
                          {"sample_index": np.arange(samples), "noisy_label": noisy})
    clean = noisy == truth
    index = np.arange(samples, dtype=np.int64)
    meta = {"params": {"data.dataset": "synthetic", "train.p_threshold": 0.5}}
    for epoch in range(epochs):
        columns: dict[str, list[np.ndarray]] = {name: [] for name in artifacts.DIVISIONS.names}
        for net in (1, 2):
            epoch_rng = np.random.default_rng([seed, epoch, net])  # A and B share these draws
            loss = np.where(clean, epoch_rng.gamma(1.0, 0.3, samples), epoch_rng.gamma(4.0, 0.6, samples))
            loss_norm = (loss - loss.min()) / (loss.max() - loss.min())
            prob = 1.0 / (1.0 + np.exp(12.0 * (loss_norm - 0.3)))
            if perturb:
                jitter = np.random.default_rng([seed + 1, epoch, net])
                prob = np.clip(prob + jitter.normal(0.0, 0.05, samples), 0.0, 1.0)
            columns["epoch"].append(np.full(samples, epoch, dtype=np.int32))
            columns["net"].append(np.full(samples, net, dtype=np.int8))
            columns["sample_index"].append(index)
            columns["noisy_label"].append(noisy)
            columns["loss"].append(loss.astype(np.float32))
            columns["loss_norm"].append(loss_norm.astype(np.float32))
            columns["clean_prob"].append(prob.astype(np.float32))
            columns["labeled"].append(prob > 0.5)
        artifacts.write_table(artifacts.epoch_file(root / "artifacts/divisions", epoch), "divisions",
                              {k: np.concatenate(v) for k, v in columns.items()}, meta)


def prepare_runs(folder: Path, epochs: int, samples: int) -> tuple[Path, Path]:
    """Runs A and B under `folder`, written unless a previous call left runs of this size there."""
    stamp = folder / "bench_diff.json"
    wanted = {"epochs": epochs, "samples": samples}
    a, b = folder / "run_a", folder / "run_b"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        print(f"reusing the synthetic runs in {folder}")
        return a, b
    start = time.perf_counter()
    write_run(a, epochs, samples, perturb=False)
    write_run(b, epochs, samples, perturb=True)
    stamp.write_text(json.dumps(wanted))
    rows = 2 * epochs * 2 * samples
    size = sum(f.stat().st_size for f in folder.rglob("*.parquet")) / 1e9
    print(f"wrote {rows:,} division rows ({size:.2f} GB of Parquet) in {time.perf_counter() - start:.1f} s")
    return a, b


def time_diff(a: Path, b: Path, repeats: int, extra: list[str]) -> list[float]:
    command = [sys.executable, "-m", "dividemix_cli", "diff", str(a), str(b), *extra]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"diff failed ({result.returncode}): {result.stderr.strip()}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to write (and reuse) the runs; default: a temporary folder")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-out", action="store_true", help="also time diff --by-class --out FILE --html FILE")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_diff_") as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        a, b = prepare_runs(folder, args.epochs, args.samples)
        times = time_diff(a, b, args.repeats, [])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"diff: {args.epochs} epochs x 2 nets x {args.samples:,} samples per run, "
              f"{2 * args.epochs * 2 * args.samples:,} rows")
        print(f"  wall time: median {statistics.median(times):.2f} s of {len(times)} "
              f"({', '.join(f'{t:.2f}' for t in times)})")
        print(f"  peak RSS: {peak_mb:,.0f} MB")
        if args.with_out:
            out, page = folder / "per_sample.parquet", folder / "diff.html"
            times = time_diff(a, b, args.repeats, ["--by-class", "--out", str(out), "--html", str(page)])
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"diff --by-class --out --html ({out.stat().st_size / 1e6:,.0f} MB of per-sample rows written): "
                  f"median {statistics.median(times):.2f} s, peak RSS of all runs {peak_mb:,.0f} MB")
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load}")


if __name__ == "__main__":
    main()
