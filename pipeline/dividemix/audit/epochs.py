"""Reading a run's divisions one epoch at a time (only the columns needed), and its truth when at hand."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dividemix.audit.sources import DIVISIONS, NOISY, TRUTH, AuditError, RunSource
from dividemix.files import artifacts

EPOCH_FILE = re.compile(r"^epoch_(\d+)\.parquet$")
DIFF_COLUMNS = ["net", "sample_index", "clean_prob", "labeled", "noisy_label"]


def division_epochs(source: RunSource) -> list[int]:
    """The epochs of a run's divisions, from the file names (epoch_XXX.parquet), sorted."""
    if not source.exists(DIVISIONS):
        raise AuditError(f"{source.name}: no {source.path(DIVISIONS)}")
    epochs = [int(m.group(1)) for name in source.listdir(DIVISIONS) if (m := EPOCH_FILE.match(name))]
    if not epochs:
        raise AuditError(f"{source.name}: {source.path(DIVISIONS)} holds no epoch_XXX.parquet")
    return sorted(epochs)


def _division_file(epoch: int) -> str:
    return f"{DIVISIONS}/epoch_{epoch:03d}.parquet"


def read_division_file(
    source: RunSource, epoch: int, columns: list[str], samples: list[int] | None = None
) -> tuple[pa.Table, dict]:
    """One epoch's division, `columns` only (schema checked), and its recorded parameters.

    With `samples`, only those sample indices' rows are kept (filtered in Arrow, before pandas).
    """
    table, meta = read_division_meta(source, epoch, columns, samples)
    return table, meta.get("params", {})


def read_division_meta(
    source: RunSource, epoch: int, columns: list[str], samples: list[int] | None = None
) -> tuple[pa.Table, dict]:
    """`read_division_file` with the file's whole `dividemix.meta`: its parameters and, for a
    selection rule other than the GMM, its record (`selection`: per network the rule, its cut,
    selection ratio, per-class quota and what each class took; `selection_of`)."""
    relative = _division_file(epoch)
    with source.open(relative) as handle, artifacts.readable(source.where(relative)):
        parquet = pq.ParquetFile(handle)
        # the schema check of artifacts.read_table, on a file that may live in a revision
        artifacts.check_schema(Path(source.path(relative)), "divisions", parquet.schema_arrow)
        raw = (parquet.schema_arrow.metadata or {}).get(b"dividemix.meta")
        table = parquet.read(columns=columns)
    if samples is not None:
        table = table.filter(pc.is_in(table.column("sample_index"), value_set=pa.array(samples, pa.int64())))
    return table, json.loads(raw) if raw else {}


def selection_of(meta: dict, net: int) -> dict:
    """Network `net`'s selection record in a division file's meta; a GMM division's: {"rule": "gmm"}
    (its record is the mixtures' file)."""
    return meta.get("selection", {}).get(str(net)) or {"rule": "gmm"}


def recorded_params(source: RunSource) -> dict[str, Any]:
    """The parameters the train stage recorded in the run's last division file (metadata only)."""
    relative = _division_file(division_epochs(source)[-1])
    with source.open(relative) as handle:
        with artifacts.readable(source.where(relative)):
            raw = (pq.read_schema(handle).metadata or {}).get(b"dividemix.meta")
    return json.loads(raw).get("params", {}) if raw else {}


@dataclass
class EpochDivision:
    """One epoch of one run: per network, arrays indexed by sample_index (length n_train)."""

    epoch: int
    clean_prob: dict[int, np.ndarray]
    labeled: dict[int, np.ndarray]
    noisy_label: np.ndarray
    params: dict[str, Any]
    selection: dict[int, dict] | None = None  # net -> the rule's record (`selection_of`)

    @property
    def n_train(self) -> int:
        return len(self.noisy_label)


def _is_each_once(sample_index: np.ndarray, n: int) -> bool:
    """Whether `sample_index` holds 0..n-1, each exactly once (in any order)."""
    if len(sample_index) != n:
        return False
    if np.array_equal(sample_index, np.arange(n)):  # the layout train writes: cheap to confirm
        return True
    if sample_index.min() < 0 or sample_index.max() >= n:
        return False
    return bool(np.all(np.bincount(sample_index, minlength=n) == 1))


def _dense(sample_index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """`values` placed at their sample indices (0..n-1, each once)."""
    if np.array_equal(sample_index, np.arange(n)):
        return values
    out = np.empty(n, dtype=values.dtype)
    out[sample_index] = values
    return out


def read_epoch(source: RunSource, epoch: int) -> EpochDivision:
    """One epoch's divisions as dense per-network arrays; refuses incomplete sample indices."""
    table, meta = read_division_meta(source, epoch, DIFF_COLUMNS)
    params = meta.get("params", {})
    net = table.column("net").to_numpy()
    index = table.column("sample_index").to_numpy()
    prob = table.column("clean_prob").to_numpy()
    labeled = table.column("labeled").to_numpy(zero_copy_only=False)
    noisy = table.column("noisy_label").to_numpy()
    nets = sorted(pc.unique(table.column("net")).to_pylist())
    n = len(index) // max(len(nets), 1)
    clean_prob, labeled_by, noisy_label = {}, {}, None
    for k in nets:
        rows = net == k
        idx = index[rows]
        if not _is_each_once(idx, n):
            raise AuditError(
                f"{source.name}: epoch {epoch}, net {k}: sample indices are not 0..{n - 1} once each"
            )
        clean_prob[k] = _dense(idx, prob[rows], n)
        labeled_by[k] = _dense(idx, labeled[rows], n)
        if noisy_label is None:
            noisy_label = _dense(idx, noisy[rows], n)
    if noisy_label is None:
        raise AuditError(f"{source.name}: epoch {epoch}: the division file holds no rows")
    return EpochDivision(epoch, clean_prob, labeled_by, noisy_label, params, {k: selection_of(meta, k) for k in nets})


def read_truth_mask(source: RunSource, n_train: int) -> np.ndarray | None:
    """True where the noisy label is the true one, or None when the run's truth is not at hand.

    The same mask as `truth.truth_of(...).clean` with the full truth, read through the source (folder or revision).
    """
    if not (source.exists(TRUTH) and source.exists(NOISY)):
        return None
    truth = load_truth(source)
    with source.open(NOISY) as handle, artifacts.readable(source.where(NOISY)):
        parquet = pq.ParquetFile(handle)
        artifacts.check_schema(Path(source.path(NOISY)), "noisy_labels", parquet.schema_arrow)
        noisy = parquet.read(columns=["sample_index", "noisy_label"])
    index = noisy.column("sample_index").to_numpy()
    labels = _dense(index, noisy.column("noisy_label").to_numpy(), len(index))
    if len(truth) != n_train or len(labels) != n_train:
        raise AuditError(
            f"{source.name}: {len(truth)} true labels and {len(labels)} noisy labels for {n_train} training samples"
        )
    return labels == truth


def sample_truth(source: RunSource, samples: list[int]) -> dict[int, int] | None:
    """The true labels of `samples`, when the run's truth is at hand (an audit, not training)."""
    if not source.exists(TRUTH):
        return None
    truth = load_truth(source)
    return {s: int(truth[s]) for s in samples if 0 <= s < len(truth)}


def load_truth(source: RunSource) -> np.ndarray:
    """The run's true training labels (an audit reads them; training never does)."""
    with source.open(TRUTH) as handle:
        try:
            return np.load(handle, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise AuditError(f"{source.where(TRUTH)}: not a readable .npy file ({exc}); "
                             "rerun the download stage or `dvc checkout`") from None


def unfinished_warning(source: RunSource) -> str | None:
    """One line when the run stopped before its last epoch (its last division epoch is not the
    `train.epochs - 1` it recorded), else None: its figures are then those of a partial run."""
    last = division_epochs(source)[-1]
    planned = recorded_params(source).get("train.epochs")
    if planned is None or last >= planned - 1:
        return None
    return (f"warning: {source.name} is not finished: its last epoch is {last} of {planned - 1} "
            f"(train.epochs {planned}); `dvc repro` resumes it")


def division_threshold(params: dict[str, Any], default: float = 0.5) -> float:
    """The run's train.p_threshold as recorded in its artifacts (default when not recorded)."""
    return float(params.get("train.p_threshold", default))


def describe_epochs(epochs: list[int]) -> str:
    """'10-29' for a contiguous range, else the list."""
    if not epochs:
        return "none"
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else str(epochs[0])
    return ", ".join(map(str, epochs))
