"""Label noise: the reference's semantics (official `dataloader_cifar.py`), and label files.

sym, sym_true and asym pick the same samples: the first int(rate * N) indices of a seeded
permutation.
- sym: each picked sample gets a label drawn uniformly from *all* classes, its true one included,
  so the real wrong-label rate is about rate * (1 - 1/C) (the reference);
- sym_true: each picked sample gets a label drawn uniformly from the C - 1 *other* classes (the
  paper appendix's "true noise"): the wrong-label rate is exactly int(rate * N) / N;
- asym: each picked sample gets its class's image under the data set's map (classes not in the
  map keep their label). CIFAR-10: the reference's map; CIFAR-100: the next class within the
  superclass (`data.cifar100_superclass_map`).
- file: per-sample noisy labels read from a file under labels/ (`read_label_file`): CIFAR-N's
  .pt files (noise.key picks the annotation), or Parquet / CSV with columns sample_index, label.
- none: the labels as they are (a folder data set's listed labels are already noisy).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from dividemix import artifacts
from dividemix.data import load_train_given_labels, load_train_truth, read_meta, resolve_spec
from dividemix.io import file_digest

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


# ------------------------------------------------------------------------------------ label files
class LabelFileError(ValueError):
    """A label file is unreadable or does not fit the training set (message: one line)."""


def _numpy_safe_globals() -> list:
    """What a CIFAR-N .pt file (a dict of numpy arrays) needs beyond torch.load's weights_only set.

    Array reconstruction and dtypes only: nothing that can run code. The files were saved with
    numpy 1, whose arrays name `numpy.core.multiarray._reconstruct`; numpy 2 calls it
    `numpy._core...`, so both names are allow-listed for the same function.
    """
    reconstruct = np.zeros(1).__reduce__()[0]
    dtypes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *dtypes,
    ]


def _read_pt(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels under `key`, the file's clean_label or None) of a CIFAR-N .pt file."""
    import torch

    if key is None:
        raise LabelFileError(f"{path}: noise.key is required for a .pt label file")
    try:
        # weights_only=True with an allow-list of numpy's array globals: a .pt file is a pickle,
        # and this refuses any object other than tensors, numpy arrays and plain containers.
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LabelFileError(f"{path}: not a loadable CIFAR-N .pt file ({first})") from None
    if not isinstance(content, dict):
        raise LabelFileError(f"{path}: a .pt label file must hold a dict of label arrays (CIFAR-N), not a {type(content).__name__}")
    if key not in content:
        allowed = ", ".join(sorted(str(k) for k in content))
        raise LabelFileError(f"{path}: noise.key {key!r} is not in the file; allowed: {allowed}")

    def as_array(value, name: str) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            value = value.numpy()
        array = np.asarray(value)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise LabelFileError(f"{path}: {name!r} is not a 1-D array of integer labels")
        return array.astype(np.int64)

    clean = content.get("clean_label")
    return as_array(content[key], key), (as_array(clean, "clean_label") if clean is not None and key != "clean_label" else None)


def _read_table(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(sample_index, label, number of the first data line) of a Parquet or CSV label file."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types; one line names the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LabelFileError(f"{path}: cannot read ({first})") from None
    missing = [c for c in ("sample_index", "label") if c not in frame.columns]
    if missing:
        raise LabelFileError(
            f"{path}: column {missing[0]} missing; a label file has columns sample_index, label "
            f"(found: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    first_row = 2 if path.suffix == ".csv" else 0  # CSV: line 1 is the header
    where = "line" if path.suffix == ".csv" else "row"
    columns = []
    for name in ("sample_index", "label"):
        column = frame[name]
        numeric = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero(numeric.isna().to_numpy() | (numeric.to_numpy(dtype=float, na_value=np.nan) % 1 != 0))
        if len(bad):
            value = column.iloc[int(bad[0])]
            what = "missing" if pd.isna(value) else f"{getattr(value, 'item', lambda: value)()!r}, not an integer"
            raise LabelFileError(f"{path}: {name} at {where} {first_row + int(bad[0])} is {what}")
        columns.append(numeric.to_numpy().astype(np.int64))
    return columns[0], columns[1], first_row


def read_label_file(path: str | Path, *, key: str | None, n_train: int, num_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample noisy labels from `path`, in training order; (labels (N,), file's clean labels or None).

    .pt: a CIFAR-N dict of arrays in torchvision's train order, `key` picks one; .parquet/.csv:
    columns sample_index, label (any row order). Refused, with one line naming the file: a wrong
    length, a missing or duplicate sample_index, a label outside [0, num_classes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file (noise.file) not found; see labels/README.md")
    if path.suffix == ".pt":
        labels, clean = _read_pt(path, key)
        if len(labels) != n_train:
            raise LabelFileError(f"{path}: {key!r} has {len(labels)} labels for {n_train} training samples")
        index, first_row, where = np.arange(n_train), 0, "position"
    else:
        index, labels, first_row = _read_table(path)
        clean, where = None, "line" if path.suffix == ".csv" else "row"
        outside = np.flatnonzero((index < 0) | (index >= n_train))
        if len(outside):
            i = int(outside[0])
            raise LabelFileError(f"{path}: sample_index {index[i]} at {where} {first_row + i} outside [0, {n_train})")
        order = np.argsort(index, kind="stable")
        duplicate = np.flatnonzero(np.diff(index[order]) == 0)
        if len(duplicate):
            i = int(order[duplicate[0] + 1])
            raise LabelFileError(f"{path}: sample_index {index[i]} appears twice (again at {where} {first_row + i})")
        if len(index) < n_train:  # distinct and in range: fewer rows means some samples have no label
            seen = np.zeros(n_train, dtype=bool)
            seen[index] = True
            raise LabelFileError(
                f"{path}: sample_index {int(np.flatnonzero(~seen)[0])} missing ({len(index)} rows for {n_train} training samples)"
            )
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise LabelFileError(f"{path}: label {labels[i]} at {where} {first_row + i} outside [0, {num_classes})")
    out = np.empty(n_train, dtype=np.int64)
    out[index] = labels
    return out, clean


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
    spec = resolve_spec(dataset, meta)
    truth = load_train_truth(prepared) if meta.get("has_truth", True) else None
    if truth is None and mode not in ("none", "file"):
        raise ValueError(
            f"noise.mode {mode!r} needs the true training labels, which data set {dataset!r} does not have; allowed: none, file"
        )
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
