"""What the flows show, read from what the stages write: epoch tables, plots CSVs, the report.

Paths are those of dvc.yaml's outs (tests/test_flows.py checks that each is one). Readers go
through the artifact contract (`dividemix.files.artifacts.read_table`: pandas and pyarrow only, schema
checked), never through training code.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from dividemix.files import layout

# The stages' outputs, by the names dvc.yaml gives them (dividemix.files.layout: plain strings).
WARMUP_EPOCHS = f"{layout.WARMUP_ARTIFACTS}/epochs.parquet"
EPOCHS = layout.EPOCHS
DIVISION_CSV = layout.DIVISION_PLOT
EVAL_JSON = layout.EVAL_METRICS
REPORT_MD = layout.REPORT_MD
REPORT_HTML = layout.REPORT_HTML

# dividemix.run.progress.Progress, when not on a terminal: "[train] 3/20 epoch=12 test_acc=0.9 ... (4.1s)"
PROGRESS_LINE = re.compile(r"^\[(?P<stage>[\w-]+)\] (?P<done>\d+)/(?P<total>\d+) (?P<figures>.*?)(?: \([\d.]+s\))?$")

TABLE_COLUMNS = [
    "epoch", "phase", "test_acc", "test_acc_net1", "test_acc_net2",
    "labeled_by_net1", "labeled_by_net2", "auc_net1", "auc_net2",
]


def parse_progress(line: str) -> tuple[str, int, int, str] | None:
    """(stage, done, total, figures) of a progress line, or None."""
    match = PROGRESS_LINE.match(line.strip())
    if match is None or int(match["total"]) <= 0:
        return None
    return match["stage"], int(match["done"]), int(match["total"]), match["figures"]


def epoch_rows(repo: str | Path, *, with_division: bool) -> list[dict[str, Any]]:
    """One row per finished epoch, warm-up included: accuracies, labeled counts, division AUC.

    `with_division`: join evaluate's plots/division.csv (only when evaluate is up to date, so a
    stale file from an earlier run never shows next to new accuracies).
    """
    import pandas as pd

    from dividemix.files.artifacts import read_table

    repo = Path(repo)
    frames = [read_table(repo / path, "epochs") for path in (WARMUP_EPOCHS, EPOCHS) if (repo / path).exists()]
    if not frames:
        return []
    table = pd.concat(frames, ignore_index=True).sort_values("epoch", kind="stable")
    table = table.rename(columns={"test_acc_ensemble": "test_acc"})
    if with_division and (repo / DIVISION_CSV).exists():
        division = pd.read_csv(repo / DIVISION_CSV, usecols=["epoch", "auc_net1", "auc_net2"])
        table = table.merge(division, on="epoch", how="left")
    for column in TABLE_COLUMNS:
        if column not in table.columns:
            table[column] = None
    return [{key: _plain(key, row[key]) for key in TABLE_COLUMNS} for row in table.to_dict("records")]


COUNTS = {"epoch", "labeled_by_net1", "labeled_by_net2"}


def _plain(column: str, value: Any) -> Any:
    """JSON-friendly: None for missing (warm-up has no division), ints for counts, rounded floats."""
    if column == "phase":
        return None if value is None else str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if column in COUNTS else round(float(value), 4)


EXPERIMENT_PAGES = ".dividemix/experiments"  # where a custom run's report page is saved (ignored by git)


def experiment_report(repo: str | Path, name: str) -> tuple[str | None, Path | None]:
    """The report of DVC experiment `name`, read through DVC (nothing checked out): its Markdown,
    and its HTML page saved under .dividemix/experiments/NAME/ (None for what it lacks)."""
    from dvc.api import DVCFileSystem

    from dividemix.files.atomic import write_text_atomic

    try:
        fs = DVCFileSystem(str(repo), rev=name)
        markdown = fs.read_text(REPORT_MD) if fs.exists(REPORT_MD) else None
        page = fs.read_text(REPORT_HTML) if fs.exists(REPORT_HTML) else None
    except Exception:  # noqa: BLE001 - the UI's copy is best-effort; `dvc exp show` has the experiment
        return None, None
    saved = None
    if page is not None:
        saved = Path(repo) / EXPERIMENT_PAGES / name / "index.html"
        write_text_atomic(saved, page)
    return markdown, saved
