"""export: the cleaned label set.

For every training sample: its noisy label, the ensemble's predicted
label and confidence, the final clean probability of each network's division and their mean,
and a decision. With τ the run's `train.p_threshold` (or `--threshold`), p̄ the mean of the
two networks' clean probabilities in the final division, ŷ the ensemble's prediction (argmax
of the sum of both networks' logits, as the test accuracy) and c its confidence (the mean of
the two networks' softmax probabilities of ŷ):

    kept         p̄ > τ and ŷ = noisy label: the division trusts the label and the networks
                 agree with it; cleaned_label = the noisy label.
    relabelled   p̄ <= τ and ŷ != noisy label and c > τ: the division rejects the label and
                 the networks confidently name another class; cleaned_label = ŷ.
    distrusted   everything else: the division and the networks disagree (a trusted label
                 the networks contradict, a rejected label the networks confirm) or the
                 networks are not confident; cleaned_label is null (leave the sample out,
                 or use it unlabeled as DivideMix does).

A label enters the cleaned set only when the two independent signals, the division (from
the losses) and the prediction (from the final networks), agree on it. The division is the
final epoch's (made by the networks at the start of that epoch); the prediction is made by
the networks after it (checkpoints/train/last.pt). Export never reads the true labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dividemix.audit.epochs import division_epochs, division_threshold, read_epoch
from dividemix.audit.sources import CHECKPOINT, AuditError, RunSource
from dividemix.files.atomic import atomic_path
from dividemix.judging.relabel import DECISIONS, decide, ensemble_predictions

EXPORT_SCHEMA = pa.schema(
    [
        ("sample_index", pa.int64()),
        ("noisy_label", pa.int64()),
        ("predicted_label", pa.int64()),
        ("confidence", pa.float32()),
        ("clean_prob_net1", pa.float32()),
        ("clean_prob_net2", pa.float32()),
        ("clean_prob", pa.float32()),
        ("decision", pa.string()),
        ("cleaned_label", pa.int64()),  # null for distrusted samples
    ]
)



@dataclass
class FinalDivision:
    epoch: int
    noisy_label: np.ndarray  # (N,)
    clean_prob: dict[int, np.ndarray]  # net -> (N,)
    params: dict[str, Any]


def final_division(source: RunSource) -> FinalDivision:
    epoch = division_epochs(source)[-1]
    division = read_epoch(source, epoch)
    return FinalDivision(epoch, division.noisy_label, division.clean_prob, division.params)


def cleaned_labels(root: Path, *, threshold: float | None = None, device: str = "auto") -> tuple[pd.DataFrame, dict]:
    """The cleaned label set of the run at `root` (EXPORT_SCHEMA columns) and what it was made from."""
    source = RunSource(str(root), str(root))
    final = final_division(source)
    if sorted(final.clean_prob) != [1, 2]:
        raise AuditError(f"{root}: the final division has networks {sorted(final.clean_prob)}, expected 1 and 2")
    tau = division_threshold(final.params) if threshold is None else threshold
    if not 0.0 < tau < 1.0:
        what = "--threshold" if threshold is not None else "the run's train.p_threshold"
        raise AuditError(f"{what} {tau}: must be in (0, 1)")
    try:
        predicted, confidence, checkpoint_epoch = ensemble_predictions(Path(root), final.params, device=device)
    except FileNotFoundError as exc:
        raise AuditError(str(exc)) from None
    if checkpoint_epoch != final.epoch:
        raise AuditError(
            f"{root / CHECKPOINT} is from epoch {checkpoint_epoch} but the last division is epoch {final.epoch}; "
            "rerun the train stage"
        )
    if len(predicted) != len(final.noisy_label):
        raise AuditError(f"{root}: {len(predicted)} training images for {len(final.noisy_label)} divided samples")
    mean_prob = ((final.clean_prob[1].astype(np.float64) + final.clean_prob[2]) / 2).astype(np.float32)
    codes, cleaned = decide(final.noisy_label, predicted, confidence, mean_prob, tau)
    frame = pd.DataFrame(
        {
            "sample_index": np.arange(len(predicted), dtype=np.int64),
            "noisy_label": final.noisy_label.astype(np.int64),
            "predicted_label": predicted,
            "confidence": confidence,
            "clean_prob_net1": final.clean_prob[1],
            "clean_prob_net2": final.clean_prob[2],
            "clean_prob": mean_prob,
            "decision": np.asarray(DECISIONS)[codes],
            "cleaned_label": pd.arrays.IntegerArray(cleaned.astype(np.int64), mask=cleaned < 0),  # null: distrusted
        }
    )
    counts = np.bincount(codes, minlength=len(DECISIONS))
    planned = final.params.get("train.epochs")
    info = {"epoch": final.epoch, "threshold": tau, "counts": dict(zip(DECISIONS, map(int, counts))),
            "finished": planned is None or final.epoch >= planned - 1}  # a stopped run's labels say so
    return frame, info


def export_targets(out: str | Path) -> list[Path]:
    """The files `--out` names: FILE.parquet, FILE.csv, or both (cleaned_labels.*) in a folder."""
    out = Path(out)
    if out.suffix in (".parquet", ".csv"):
        return [out]
    if out.suffix:
        raise AuditError(f"--out {out}: expected a folder, FILE.parquet or FILE.csv")
    return [out / "cleaned_labels.parquet", out / "cleaned_labels.csv"]


def write_export(frame: pd.DataFrame, out: str | Path, info: dict) -> list[Path]:
    """Write the cleaned labels atomically to `export_targets(out)`; Parquet files carry `info`."""
    targets = export_targets(out)
    for target in targets:
        if target.suffix == ".parquet":
            table = pa.Table.from_pandas(frame, schema=EXPORT_SCHEMA, preserve_index=False)
            meta = {b"dividemix.schema": b"cleaned_labels", b"dividemix.schema_version": b"1",
                    b"dividemix.meta": json.dumps(info, sort_keys=True).encode()}
            table = table.replace_schema_metadata(meta)
            with atomic_path(target) as tmp:
                pq.write_table(table, tmp)
        else:
            with atomic_path(target) as tmp:
                frame.to_csv(tmp, index=False)
    return targets
