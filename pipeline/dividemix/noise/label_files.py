"""Label files: per-sample noisy labels from a file under labels/ (`noise.mode: file`).

CIFAR-N's .pt files (a dict of numpy arrays; `noise.key` picks the annotation), loaded with
`weights_only=True` and an allow-list of numpy's array globals, or Parquet / CSV with columns
sample_index, label. Each file is checked against the training set: length, range, missing or
duplicate indices, and its clean_label against the prepared truth.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np


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
