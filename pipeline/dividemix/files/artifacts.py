"""The artifact contract: every Parquet file's schema, written once here and checked on read.

Training, evaluation, the report and (later) the flows and audit commands talk to each other only
through these files. Each file carries its schema name and version in its Parquet metadata; a
reader refuses a file whose name, version or columns differ (a reader never guesses a column).

Layout (paths relative to the repository root, as wired in dvc.yaml):
    data/noisy/labels.parquet              NOISY_LABELS
    artifacts/warmup/epochs.parquet        EPOCHS    (warm-up epochs)
    artifacts/warmup/losses.parquet        LOSSES    (warm-up steps; loss_x is the cross-entropy)
    artifacts/epochs/epoch_XXX.parquet     EPOCHS    (one file per DivideMix epoch)
    artifacts/losses/epoch_XXX.parquet     LOSSES    (one row per training step)
    artifacts/divisions/epoch_XXX.parquet  DIVISIONS (one row per network and training sample)
    artifacts/mixtures/epoch_XXX.parquet   MIXTURES  (the fitted GMM of each network)
    artifacts/baseline/epochs.parquet      BASELINE_EPOCHS
    artifacts/baseline/losses.parquet      LOSSES    (net = 0)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from dividemix.files.atomic import write_atomic

SCHEMA_VERSION = "1"  # the version of every schema not listed in SCHEMA_VERSIONS below

NOISY_LABELS = pa.schema([("sample_index", pa.int64()), ("noisy_label", pa.int64())])

DIVISIONS = pa.schema(
    [
        ("epoch", pa.int32()),
        ("net", pa.int8()),  # the network whose losses made this division (it trains the *other* one)
        ("sample_index", pa.int64()),
        ("noisy_label", pa.int64()),
        ("loss", pa.float32()),  # raw cross-entropy against the noisy label, eval mode, no augmentation
        ("loss_norm", pa.float32()),  # the mixture's input: min-max normalised (history-averaged) loss
        ("clean_prob", pa.float32()),  # posterior of the low-mean component
        ("labeled", pa.bool_()),  # clean_prob > p_threshold
    ]
)

MIXTURES = pa.schema(
    [
        ("epoch", pa.int32()),
        ("net", pa.int8()),
        ("component", pa.int8()),
        ("mean", pa.float64()),
        ("variance", pa.float64()),
        ("weight", pa.float64()),
        ("clean", pa.bool_()),  # the component with the smaller mean
    ]
)

LOSSES = pa.schema(
    [
        ("epoch", pa.int32()),
        ("net", pa.int8()),
        ("step", pa.int32()),
        ("lr", pa.float64()),
        ("lambda_u", pa.float64()),  # after the ramp
        ("loss_x", pa.float32()),
        ("loss_u", pa.float32()),
        ("penalty", pa.float32()),
        ("loss", pa.float32()),
        ("n_labeled", pa.int32()),
        ("n_unlabeled", pa.int32()),
    ]
)

EPOCHS = pa.schema(
    [
        ("epoch", pa.int32()),
        ("phase", pa.string()),  # "warmup" or "dividemix"
        ("test_acc_net1", pa.float64()),
        ("test_acc_net2", pa.float64()),
        ("test_acc_ensemble", pa.float64()),  # argmax of the sum of both networks' logits
        ("labeled_by_net1", pa.int32()),  # size of the labeled set net1's losses made (null in warm-up)
        ("labeled_by_net2", pa.int32()),
        # v2: with a clean validation set (Clothing1M protocol), each network's validation accuracy
        # this epoch and the test accuracy of the ensemble of each network's best-validation
        # weights so far (the reference's final Clothing1M figure); null without a validation set.
        ("val_acc_net1", pa.float64()),
        ("val_acc_net2", pa.float64()),
        ("test_acc_best_val", pa.float64()),
        # v3: top-5 on the test set (null with fewer than 5 classes), and top-1 / top-5 on a second
        # test set (WebVision's ImageNet val; null without one), each network and the ensemble.
        *((f"{figure}_{model}", pa.float64()) for figure in ("test_top5", "test2_acc", "test2_top5")
          for model in ("net1", "net2", "ensemble")),
    ]
)

# v2 of EPOCHS: without the top-5 and second-test columns; v1: without the validation columns
# either. Both read as v3 with the missing columns null.
EPOCHS_V2 = pa.schema([field for field in EPOCHS if not field.name.startswith(("test_top5_", "test2_"))])
EPOCHS_V1 = pa.schema([field for field in EPOCHS_V2 if not field.name.startswith(("val_acc_", "test_acc_best_val"))])

BASELINE_EPOCHS = pa.schema([("epoch", pa.int32()), ("test_acc", pa.float64())])

# The samples the report and `dividemix inspect` show as thumbnails (evaluate's `gallery`): per
# class of the given label, the ones the final division distrusts most and the most trusted.
GALLERY = pa.schema(
    [
        ("sample_index", pa.int64()),
        ("noisy_label", pa.int64()),
        ("group", pa.string()),  # "distrusted" (lowest clean probability) or "clean" (highest)
        ("rank", pa.int32()),  # 0: the most distrusted / the most trusted of its class and group
        ("clean_prob", pa.float32()),  # mean over the networks whose final division holds the sample
        ("predicted_label", pa.int64()),  # the final ensemble's prediction
        ("confidence", pa.float32()),
        ("decision", pa.string()),  # the export's rule (relabel.decide)
        ("true_label", pa.int64()),  # null unless the truth is known (evaluation: full or verified)
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "noisy_labels": NOISY_LABELS,
    "divisions": DIVISIONS,
    "mixtures": MIXTURES,
    "losses": LOSSES,
    "epochs": EPOCHS,
    "baseline_epochs": BASELINE_EPOCHS,
    "gallery": GALLERY,
}


# Per-schema versions: a schema's version is bumped whenever its columns change.
SCHEMA_VERSIONS: dict[str, str] = {name: SCHEMA_VERSION for name in SCHEMAS} | {"epochs": "3"}

# Older versions a reader still accepts, with their columns: upgraded on read (new columns null).
OLD_SCHEMAS: dict[tuple[str, str], pa.Schema] = {("epochs", "1"): EPOCHS_V1, ("epochs", "2"): EPOCHS_V2}


class ArtifactError(ValueError):
    """An artifact is missing or does not follow its schema."""


def epoch_file(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / f"epoch_{epoch:03d}.parquet"


class RowBuffer:
    """Rows of one artifact collected over several epochs, held as typed Arrow record batches.

    A file written once at the end of a stage (warm-up, baseline losses) grows with the number of
    epochs; kept as Arrow it costs its columns' bytes (about 50 a loss row) instead of a Python
    object per value (about ten times more).
    """

    def __init__(self, name: str):
        self.name = name
        self.batches: list[pa.RecordBatch] = []

    def append(self, columns: dict[str, Any]) -> None:
        self.batches.append(pa.RecordBatch.from_pydict(columns, schema=SCHEMAS[self.name]))

    def __len__(self) -> int:
        return sum(batch.num_rows for batch in self.batches)

    def table(self) -> pa.Table:
        """All rows as one table (one chunk per column, as `from_pydict` of the merged rows)."""
        return pa.Table.from_batches(self.batches, schema=SCHEMAS[self.name]).combine_chunks()


def write_table(
    path: str | Path, name: str, columns: dict[str, Any] | pa.Table, meta: dict[str, Any] | None = None
) -> None:
    """Write `columns` (a mapping of columns, or a table) as Parquet with schema `name`, atomically,
    self-describing in its metadata.

    `meta` must be deterministic (no timestamps): two runs with the same parameters must give
    byte-identical files.
    """
    schema = SCHEMAS[name]
    if isinstance(columns, pa.Table):
        if not columns.schema.remove_metadata().equals(schema):
            found = columns.schema.names
            raise ArtifactError(f"{path}: columns {found} differ from the '{name}' schema {schema.names}")
        table = columns
    else:
        table = pa.Table.from_pydict(columns, schema=schema)
    metadata = {
        b"dividemix.schema": name.encode(),
        b"dividemix.schema_version": SCHEMA_VERSIONS[name].encode(),
    }
    if meta:
        metadata[b"dividemix.meta"] = json.dumps(meta, sort_keys=True).encode()
    table = table.replace_schema_metadata(metadata)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def table_of(frame: Any, name: str) -> pa.Table:
    """A pandas frame as a table of schema `name` (columns in the schema's order)."""
    schema = SCHEMAS[name]
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False).replace_schema_metadata(None)


def check_schema(path: Path, name: str, schema: pa.Schema) -> str:
    """Refuse a file that is not artifact `name` at its current (or an upgradable) version.

    Returns the file's version.
    """
    metadata = schema.metadata or {}
    found = metadata.get(b"dividemix.schema", b"").decode()
    version = metadata.get(b"dividemix.schema_version", b"").decode()
    current = SCHEMA_VERSIONS[name]
    if found != name or (version != current and (name, version) not in OLD_SCHEMAS):
        raise ArtifactError(f"{path}: expected artifact '{name}' v{current}, found '{found or '?'}' v{version or '?'}")
    expected = SCHEMAS[name] if version == current else OLD_SCHEMAS[(name, version)]
    if not schema.remove_metadata().equals(expected):
        raise ArtifactError(f"{path}: columns {schema.names} differ from the '{name}' schema {expected.names}")
    return version


def _upgraded(table: pa.Table, name: str) -> pa.Table:
    """An older version's table with the current schema's columns (the new ones null)."""
    columns = [
        table.column(field.name) if field.name in table.column_names else pa.nulls(len(table), field.type)
        for field in SCHEMAS[name]
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMAS[name])


@contextmanager
def readable(where: str | Path) -> Iterator[None]:
    """Arrow's errors on a corrupt or truncated file, as one line naming the file and what to do
    (Arrow's own message, e.g. "Parquet magic bytes not found in footer", names none)."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ArtifactError(
            f"{where}: not a readable Parquet file ({reason}); rerun the stage that writes it (`dvc repro`) "
            "or restore it (`dvc checkout`)"
        ) from None


def parquet_files(path: Path) -> list[Path]:
    """A Parquet file, or the files of a folder of them (hidden and temporary ones skipped, as
    pyarrow.dataset does)."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
    return [path]


def read_table(
    path: str | Path,
    name: str,
    *,
    columns: list[str] | None = None,
    filter: ds.Expression | None = None,
) -> pd.DataFrame:
    """Read a Parquet file or a folder of them (one file per epoch), checking the schema.

    Only `columns` are read and `filter` is pushed down to the files, so a caller that needs one
    epoch of a 300-epoch run reads one file's worth.
    """
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: artifact '{name}' not found")
    files = parquet_files(path)
    if not files:
        raise ArtifactError(f"{path}: artifact '{name}' holds no Parquet file")
    versions = set()
    for file in files:
        with readable(file):
            versions.add(check_schema(file, name, pq.read_schema(file)))
    if versions != {SCHEMA_VERSIONS[name]}:  # older files among them: upgrade each, then select
        whole = pa.concat_tables(_upgraded(pq.read_table(file).replace_schema_metadata(None), name) for file in files)
        dataset = ds.dataset(whole)
    else:
        dataset = ds.dataset([str(file) for file in files], format="parquet")
    with readable(path):
        table = dataset.to_table(columns=columns, filter=filter)
    frame = table.to_pandas()
    sort_keys = [key for key in ("epoch", "net", "step", "sample_index", "component") if key in frame.columns]
    if sort_keys:
        frame = frame.sort_values(sort_keys, kind="stable").reset_index(drop=True)
    return frame


def read_meta(path: str | Path) -> dict[str, Any]:
    """The `dividemix.meta` mapping a file was written with (empty if none)."""
    with readable(path):
        metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(b"dividemix.meta")
    return json.loads(raw) if raw else {}
