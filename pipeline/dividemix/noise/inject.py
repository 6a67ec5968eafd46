"""Label noise: the reference's semantics (official `dataloader_cifar.py`), and label files.

sym, sym_true and asym pick the same samples: the first int(rate * N) indices of a seeded
permutation.
- sym: each picked sample gets a label drawn uniformly from *all* classes, its true one included,
  so the real wrong-label rate is about rate * (1 - 1/C) (the reference);
- sym_true: each picked sample gets a label drawn uniformly from the C - 1 *other* classes (the
  paper appendix's "true noise"): the wrong-label rate is exactly int(rate * N) / N;
- asym: each picked sample gets its class's image under the data set's map (classes not in the
  map keep their label). CIFAR-10: the reference's map; CIFAR-100: the next class within the
  superclass (`datasets.cifar.cifar100_superclass_map`).
- file: per-sample noisy labels read from a file under labels/ (`label_files.read_label_file`):
  CIFAR-N's .pt files (noise.key picks the annotation), or Parquet / CSV with columns
  sample_index, label.
- none: the labels as they are (a folder data set's listed labels are already noisy).

A folder data set has no training truth: sym and sym_true then corrupt its *listed* labels
(more noise on top of theirs, e.g. to test a data set whose labels are verified), and the
wrong-label rate is unknown (evaluation measures it on the verified subset, if any).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dividemix.datasets.prepared import load_train_given_labels, load_train_truth, read_meta, spec_from_meta
from dividemix.files import artifacts
from dividemix.files.atomic import file_digest
from dividemix.noise.label_files import LabelFileError, read_label_file

MODES = ("none", "sym", "sym_true", "asym", "file")


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


def symmetric_true_noise(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """The appendix's "true" symmetric noise: the same picked samples, always another class."""
    if num_classes < 2:
        raise ValueError("noise.mode 'sym_true' needs at least two classes")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    picked = noisy_indices(len(labels), rate, rng)
    # y + k mod C with k uniform in 1..C-1 is uniform over the C-1 classes other than y.
    offsets = rng.integers(1, num_classes, size=len(picked))
    noisy[picked] = (labels[picked] + offsets) % num_classes
    return noisy


def asymmetric_noise(labels: np.ndarray, rate: float, mapping: dict[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    picked = noisy_indices(len(labels), rate, rng)
    size = max(int(labels.max(initial=0)), *mapping, *mapping.values(), 0) + 1
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
    if mode == "file":
        raise ValueError("noise.mode 'file' reads its labels from noise.file (read_label_file), it draws none")
    if mode == "none" or rate == 0.0:
        return labels.copy()
    if mode == "sym":
        return symmetric_noise(labels, rate, num_classes, seed)
    if mode == "sym_true":
        return symmetric_true_noise(labels, rate, num_classes, seed)
    if mode == "asym":
        if asym_map is None:
            raise ValueError("noise.mode 'asym' needs a class map for this data set")
        return asymmetric_noise(labels, rate, asym_map, seed)
    raise ValueError(f"noise.mode {mode!r} unknown; allowed: {', '.join(MODES)}")


def noisy_label_file(
    *,
    dataset: str,
    prepared: Path,
    out: Path,
    mode: str,
    rate: float,
    seed: int,
    file: str | Path | None = None,
    key: str | None = None,
) -> dict:
    """The noise stage: make the noisy training labels, write `out` (Parquet), return a summary.

    The summary holds the actual wrong-label rate (sym noise keeps the true label with
    probability 1/C, so it is below `rate`), also for label files; it is null (n_wrong too) when
    the training truth is unknown (folder data sets). `file` is read relative to the working
    directory (the repository under `dvc repro`).
    """
    meta = read_meta(prepared, dataset=dataset)
    spec = spec_from_meta(meta)
    truth = load_train_truth(prepared) if meta.get("has_truth", True) else None
    if truth is None and mode == "asym":
        raise ValueError(f"noise.mode 'asym' needs a class map, which data set {dataset!r} does not have;"
                         " allowed: none, sym, sym_true, file")
    base = truth if truth is not None else load_train_given_labels(prepared)
    file_meta = {}
    if mode == "file":
        if file is None:
            raise ValueError("noise.file: required when noise.mode is 'file'")
        noisy, clean = read_label_file(file, key=key, n_train=len(base), num_classes=spec.num_classes)
        if clean is not None and truth is not None and not np.array_equal(clean, truth):
            raise LabelFileError(
                f"{file}: its clean_label differs from the prepared {dataset} training labels at "
                f"{int((clean != truth).sum())} of {len(truth)} samples (another data set, or not in torchvision's train order)"
            )
        file_meta = {"file_sha256": file_digest(file)}
    else:
        noisy = inject_noise(
            base, mode=mode, rate=rate, seed=seed, num_classes=spec.num_classes, asym_map=spec.asym_map
        )
    n_wrong = int((noisy != truth).sum()) if truth is not None else None
    summary = {
        "dataset": dataset,
        "mode": mode,
        "rate": rate,
        "seed": seed,
        "file": str(file) if mode == "file" else None,
        "key": key if mode == "file" else None,
        "n_train": int(len(noisy)),
        "n_wrong": n_wrong,
        "noise_rate_actual": float(n_wrong / len(noisy)) if n_wrong is not None else None,
    }
    artifacts.write_table(
        out,
        "noisy_labels",
        {"sample_index": np.arange(len(noisy), dtype=np.int64), "noisy_label": noisy.astype(np.int64)},
        {"dataset": dataset, "mode": mode, "rate": rate, "seed": seed, "file": summary["file"], "key": summary["key"], **file_meta},
    )
    return summary
