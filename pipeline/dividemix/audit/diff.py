"""diff: run B's divisions against run A's, per common epoch and network.

Per common epoch and network: the size of each side's labeled set, the Jaccard overlap of the
two labeled sets (1 when both are empty), the samples that moved labeled->unlabeled
(`to_unlabeled`: labeled in A, not in B) and unlabeled->labeled (`to_labeled`), the mean shift
of the clean probability (B - A, signed and absolute) and, where the true labels are known
(data/prepared/train_truth.npy beside data/noisy/labels.parquet), each side's precision,
recall and AUC as `evaluation.division_quality` defines them. Runs are aligned on the epochs
both have; runs on different data (data set, number of training samples, sample indices) are
refused. Each epoch is read on its own, only the columns needed, and computed with numpy, so
memory stays at about one epoch of both runs whatever the number of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dividemix.audit.epochs import EpochDivision, describe_epochs, division_epochs, read_epoch, read_truth_mask
from dividemix.audit.measures import compare_by_class, compare_divisions, side_measures
from dividemix.audit.sources import AuditError, RunSource
from dividemix.files.atomic import atomic_path

MOVED = ("none", "to_unlabeled", "to_labeled")  # values of the per-sample `moved` column
PER_SAMPLE_SCHEMA = pa.schema(
    [
        ("epoch", pa.int32()),
        ("net", pa.int8()),
        ("sample_index", pa.int64()),
        ("labeled_a", pa.bool_()),
        ("labeled_b", pa.bool_()),
        ("clean_prob_a", pa.float32()),
        ("clean_prob_b", pa.float32()),
        ("moved", pa.dictionary(pa.int8(), pa.string())),  # none | to_unlabeled | to_labeled
    ]
)


@dataclass
class DiffResult:
    """The comparison of run B against run A, per common epoch and network."""

    name_a: str
    name_b: str
    epochs_a: list[int]
    epochs_b: list[int]
    summary: pd.DataFrame  # one row per (epoch, net)
    by_class: pd.DataFrame | None  # one row per (epoch, net, class) with by_class=True
    notes: list[str] = field(default_factory=list)
    truth_a: bool = False
    truth_b: bool = False
    compared: list[int] = field(default_factory=list)  # the epochs compared (common, or those asked for)
    last: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # net -> (prob_a, prob_b)
    last_labeled: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # net -> (a, b)
    noisy_label: np.ndarray | None = None  # A's noisy labels (the samples' classes)


def align_epochs(name_a: str, epochs_a: list[int], name_b: str, epochs_b: list[int]) -> tuple[list[int], list[str]]:
    """The epochs both runs have, and a note when they differ (runs of different lengths)."""
    common = sorted(set(epochs_a) & set(epochs_b))
    if not common:
        raise AuditError(
            f"no common epoch: {name_a} has epochs {describe_epochs(epochs_a)}, "
            f"{name_b} has {describe_epochs(epochs_b)}"
        )
    notes = []
    if epochs_a != epochs_b:
        notes.append(
            f"epochs differ ({name_a}: {describe_epochs(epochs_a)}, {name_b}: {describe_epochs(epochs_b)}); "
            f"compared on the {len(common)} common epochs {describe_epochs(common)}"
        )
    return common, notes


def check_same_data(name_a: str, a: EpochDivision, name_b: str, b: EpochDivision) -> None:
    """Refuse two runs on different data: data set, number of training samples, networks."""
    dataset_a, dataset_b = a.params.get("data.dataset"), b.params.get("data.dataset")
    if dataset_a and dataset_b and dataset_a != dataset_b:
        raise AuditError(f"cannot compare runs on different data: {name_a} is {dataset_a!r}, {name_b} is {dataset_b!r}")
    if a.n_train != b.n_train:
        raise AuditError(
            f"cannot compare runs on different data: {name_a} has {a.n_train} training samples, "
            f"{name_b} has {b.n_train}"
        )
    if sorted(a.labeled) != sorted(b.labeled):
        raise AuditError(f"cannot compare: {name_a} has networks {sorted(a.labeled)}, {name_b} has {sorted(b.labeled)}")


def parse_epochs(spec: str) -> list[int]:
    """'12', '12,15' or '10-20' (inclusive) into a list of epochs."""
    epochs: list[int] = []
    try:
        for part in spec.split(","):
            low, _, high = part.strip().partition("-")
            epochs += list(range(int(low), int(high) + 1)) if high else [int(low)]
    except ValueError:
        raise AuditError(f"--epochs {spec!r}: expected e.g. 12 or 12,15 or 10-20") from None
    return sorted(set(epochs))


def diff_runs(
    a: RunSource,
    b: RunSource,
    *,
    by_class: bool = False,
    epochs: list[int] | None = None,
    per_sample: "PerSampleWriter | None" = None,
) -> DiffResult:
    """Compare run B's divisions with run A's, epoch by epoch (see the module docstring).

    Only one epoch of each run is in memory at a time; `per_sample` (if given) receives every
    sample's pair of divisions as it is computed.
    """
    epochs_a, epochs_b = division_epochs(a), division_epochs(b)
    common, notes = align_epochs(a.name, epochs_a, b.name, epochs_b)
    if epochs is not None:
        missing = sorted(set(epochs) - set(common))
        if missing:
            raise AuditError(f"--epochs: {describe_epochs(missing)} not in the common epochs {describe_epochs(common)}")
        common = epochs
    rows, class_rows = [], []
    clean_a = clean_b = None
    result = DiffResult(a.name, b.name, epochs_a, epochs_b, pd.DataFrame(), None, notes, compared=common)
    for i, epoch in enumerate(common):
        div_a, div_b = read_epoch(a, epoch), read_epoch(b, epoch)
        check_same_data(a.name, div_a, b.name, div_b)
        if i == 0:
            clean_a, clean_b = read_truth_mask(a, div_a.n_train), read_truth_mask(b, div_b.n_train)
            result.truth_a, result.truth_b = clean_a is not None, clean_b is not None
            changed = int(np.count_nonzero(div_a.noisy_label != div_b.noisy_label))
            if changed:
                notes.append(f"the noisy labels differ on {changed} samples; classes are {a.name}'s noisy labels")
        num_classes = int(max(div_a.noisy_label.max(), div_b.noisy_label.max())) + 1
        for net in sorted(div_a.labeled):
            la, lb = div_a.labeled[net], div_b.labeled[net]
            prob_a, prob_b = div_a.clean_prob[net], div_b.clean_prob[net]
            rows.append({"epoch": epoch, "net": net, **compare_divisions(la, lb, prob_a, prob_b),
                         **side_measures("a", la, prob_a, clean_a), **side_measures("b", lb, prob_b, clean_b),
                         **rule_columns(div_a, div_b, net)})
            if by_class:
                classes = compare_by_class(div_a.noisy_label, la, lb, prob_a, prob_b, clean_a, clean_b, num_classes)
                class_rows.append(classes.assign(epoch=epoch, net=net))
            if per_sample is not None:
                per_sample.write(epoch, net, la, lb, prob_a, prob_b)
            if epoch == common[-1]:
                result.last[net] = (prob_a, prob_b)
                result.last_labeled[net] = (la, lb)
                result.noisy_label = div_a.noisy_label
    result.summary = pd.DataFrame(rows)
    if by_class:
        frame = pd.concat(class_rows, ignore_index=True)
        result.by_class = frame[["epoch", "net", *[c for c in frame.columns if c not in ("epoch", "net")]]]
    return result


def rule_columns(div_a: EpochDivision, div_b: EpochDivision, net: int) -> dict:
    """Each side's selection rule and what it used (cut, selection ratio, quota per class), when
    either side is not the GMM: a GMM run's summary keeps its columns."""
    rec = {"a": (div_a.selection or {}).get(net, {"rule": "gmm"}), "b": (div_b.selection or {}).get(net, {"rule": "gmm"})}
    if all(r["rule"] == "gmm" for r in rec.values()):
        return {}
    return {f"{key}_{side}": r.get(key) for key in ("rule", "cut", "selection_ratio", "quota") for side, r in rec.items()}


class PerSampleWriter:
    """Streams the per-sample differences into one Parquet file (one row group per epoch and net).

    Written under a temporary name and renamed when closed without error (`io.atomic_path`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._atomic = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "PerSampleWriter":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        schema = PER_SAMPLE_SCHEMA.with_metadata(
            {b"dividemix.schema": b"audit_diff", b"dividemix.schema_version": b"1"}
        )
        # dictionary encoding only where it pays (`moved`): tried on 50,000 distinct floats it is
        # abandoned after costing most of the write time
        self._writer = pq.ParquetWriter(tmp, schema, use_dictionary=["moved"])
        return self

    def write(self, epoch: int, net: int, labeled_a, labeled_b, prob_a, prob_b) -> None:
        n = len(labeled_a)
        moved = np.zeros(n, dtype=np.int8)
        moved[labeled_a & ~labeled_b] = 1
        moved[~labeled_a & labeled_b] = 2
        columns = [
            pa.array(np.full(n, epoch, dtype=np.int32)),
            pa.array(np.full(n, net, dtype=np.int8)),
            pa.array(np.arange(n, dtype=np.int64)),
            pa.array(labeled_a),
            pa.array(labeled_b),
            pa.array(prob_a.astype(np.float32, copy=False)),
            pa.array(prob_b.astype(np.float32, copy=False)),
            pa.DictionaryArray.from_arrays(pa.array(moved), pa.array(MOVED)),
        ]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._writer.schema))

    def __exit__(self, kind, value, traceback) -> None:
        self._writer.close()
        self._atomic.__exit__(kind, value, traceback)
