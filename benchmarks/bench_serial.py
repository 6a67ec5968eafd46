"""What stays serial when one run is spread over many processes, measured at web scale on this CPU.

Run from the repository root::

    .venv/bin/python benchmarks/bench_serial.py                        # 1,000,000 and 2,400,000 samples
    .venv/bin/python benchmarks/bench_serial.py --sizes 1000000 --repeats 3

For N per-sample losses (a bimodal mixture, as a division sees them), per network and epoch:

    gather    the bytes every process receives when the losses are gathered in sample order
              (N float32: the only per-sample traffic of a division)
    normalise min-max normalisation of the N losses (every process: the same input)
    fit       the reference's GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4) on N points:
              the writer's alone, broadcast as N clean probabilities (N float64)
    write     the writer's Parquet of one epoch's division rows for both networks (2N rows)

Medians of --repeats; figures only, nothing asserted. See docs/distributed.md for what they mean
for 8 GPUs and for 4 machines.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import machine_line, workdir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,2400000", help="sample counts (default 1M and 2.4M)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median; default 3)")
    return parser.parse_args(argv)


def losses(n: int) -> torch.Tensor:
    """70% clean samples with small losses, 30% noisy ones with large losses (float32)."""
    rng = np.random.default_rng(0)
    clean = rng.gamma(1.0, 0.2, int(0.7 * n))
    noisy = rng.normal(4.0, 1.0, n - len(clean)).clip(0.0)
    return torch.as_tensor(np.concatenate([clean, noisy]), dtype=torch.float32)


def median_seconds(fn, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def measure(n: int, repeats: int, folder) -> None:
    from dividemix.files import artifacts
    from dividemix.method.codivide import Division, divide, fit_mixture, min_max_normalise
    from dividemix.training.rows import division_rows

    loss = losses(n)
    norm = min_max_normalise(loss)
    prob, mixture = fit_mixture(norm.numpy(), seed=0)
    division = Division(loss.numpy(), norm.numpy(), prob, divide(prob, 0.5), mixture)
    table = division_rows(5, {1: division, 2: division}, np.zeros(n, dtype=np.int64))
    figures = {
        "normalise": median_seconds(lambda: min_max_normalise(loss), repeats),
        "fit": median_seconds(lambda: fit_mixture(norm.numpy(), seed=0), repeats),
        "write": median_seconds(lambda: artifacts.write_table(folder / "division.parquet", "divisions", table), repeats),
    }
    size = (folder / "division.parquet").stat().st_size / 1e6
    print(f"N = {n:,}: gather {4 * n / 1e6:.1f} MB of losses in, {8 * n / 1e6:.1f} MB of clean probabilities "
          f"broadcast; normalise {1000 * figures['normalise']:.1f} ms, fit {figures['fit']:.2f} s (per network), "
          f"write {figures['write']:.2f} s for both networks' {2 * n:,} rows ({size:.0f} MB); "
          f"labeled {int(division.labeled.sum()):,}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(machine_line(), f"torch threads {torch.get_num_threads()}")
    with workdir(keep=False) as folder:
        for n in (int(s) for s in args.sizes.split(",")):
            measure(n, args.repeats, folder)
    print(machine_line())


if __name__ == "__main__":
    main()
