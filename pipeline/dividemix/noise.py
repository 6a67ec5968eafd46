"""Label noise with the reference's semantics (official `dataloader_cifar.py`).

Both modes pick the same samples: the first int(rate * N) indices of a seeded permutation.
- symmetric: each picked sample gets a label drawn uniformly from *all* classes, its true one
  included, so the real wrong-label rate is about rate * (1 - 1/C);
- asymmetric: each picked sample gets its class's image under the data set's map (classes not in
  the map keep their label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dividemix import artifacts
from dividemix.data import DATASETS, load_train_truth, read_meta


def noisy_indices(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The first int(rate * n) indices of a seeded permutation, in increasing order.

    int(rate * n), not round(): the reference's count, floating-point quirks included.
    """
    permutation = rng.permutation(n)
    return np.sort(permutation[: int(rate * n)])


def symmetric_noise(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    picked = noisy_indices(len(labels), rate, rng)
    # Drawn in index order, one per picked sample, from all classes (the true one included).
    noisy[picked] = rng.integers(0, num_classes, size=len(picked))
    return noisy


def asymmetric_noise(labels: np.ndarray, rate: float, mapping: dict[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    picked = noisy_indices(len(labels), rate, rng)
    size = max(int(labels.max(initial=0)), *mapping, *mapping.values()) + 1
    lookup = np.arange(size)
    for source, target in mapping.items():
        lookup[source] = target
    noisy[picked] = lookup[labels[picked]]
    return noisy


def inject_noise(
    labels: np.ndarray,
    *,
    mode: str,
    rate: float,
    seed: int,
    num_classes: int,
    asym_map: dict[int, int] | None,
) -> np.ndarray:
    """Return noisy labels for `labels` (shape (N,), ints in [0, num_classes))."""
    if mode == "none" or rate == 0.0:
        return labels.copy()
    if mode == "sym":
        return symmetric_noise(labels, rate, num_classes, seed)
    if mode == "asym":
        if asym_map is None:
            raise ValueError("noise.mode 'asym' needs a class map for this data set")
        return asymmetric_noise(labels, rate, asym_map, seed)
    raise ValueError(f"noise.mode {mode!r} unknown; allowed: none, sym, asym")


def noisy_label_file(
    *, dataset: str, prepared: Path, out: Path, mode: str, rate: float, seed: int
) -> dict:
    """The noise stage: corrupt the prepared training labels, write `out` (Parquet), return a summary.

    The summary holds the actual wrong-label rate (sym noise keeps the true label with
    probability 1/C, so it is below `rate`).
    """
    read_meta(prepared, dataset=dataset)
    spec = DATASETS[dataset]
    truth = load_train_truth(prepared)
    noisy = inject_noise(truth, mode=mode, rate=rate, seed=seed, num_classes=spec.num_classes, asym_map=spec.asym_map)
    wrong = noisy != truth
    summary = {
        "dataset": dataset,
        "mode": mode,
        "rate": rate,
        "seed": seed,
        "n_train": int(len(truth)),
        "n_wrong": int(wrong.sum()),
        "noise_rate_actual": float(wrong.mean()),
    }
    artifacts.write_table(
        out,
        "noisy_labels",
        {"sample_index": np.arange(len(noisy), dtype=np.int64), "noisy_label": noisy.astype(np.int64)},
        {"dataset": dataset, "mode": mode, "rate": rate, "seed": seed},
    )
    return summary
