"""The samples worth looking at, and the export's figures against the truth (the `evaluate` stage).

For each class (by noisy label) the gallery holds the samples of the final division with the
lowest clean probability (those DivideMix distrusts or relabels) and, for contrast, those with
the highest. Each carries the final networks' prediction and the export's decision
(`dividemix.judging.relabel`), and its true label where the truth is known (full, or the verified subset
of `data.truth_list`). The report and `dividemix inspect` show them as thumbnails.

The final clean probability of a sample is the mean over the networks whose final division holds
it: both networks for a full-set division, whichever sampled it under the Clothing1M protocol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from dividemix.files import artifacts
from dividemix.judging.evaluation import RunArtifacts
from dividemix.judging.relabel import DECISIONS, decide, ensemble_predictions
from dividemix.judging.truth import Truth

DISTRUSTED_PER_CLASS = 4  # the lowest clean probabilities of each class
CLEAN_PER_CLASS = 2  # the highest, for contrast
DEFAULT_THRESHOLD = 0.5  # train.p_threshold's default, for a run that did not record it


def final_division(run: RunArtifacts) -> tuple[int, pd.DataFrame, dict]:
    """(epoch, one row per divided sample: sample_index, noisy_label, clean_prob, the run's params)."""
    epoch = int(run.divisions(columns=["epoch"])["epoch"].max())
    rows = run.divisions(columns=["sample_index", "noisy_label", "clean_prob"], filter=ds.field("epoch") == epoch)
    frame = rows.groupby("sample_index", sort=True).agg(noisy_label=("noisy_label", "first"),
                                                        clean_prob=("clean_prob", "mean")).reset_index()
    params = artifacts.read_meta(artifacts.epoch_file(run.root / "divisions", epoch)).get("params", {})
    return epoch, frame, params


def pick_samples(final: pd.DataFrame, low: int = DISTRUSTED_PER_CLASS, high: int = CLEAN_PER_CLASS) -> pd.DataFrame:
    """Per noisy label: the `low` least and the `high` most trusted samples (group, rank)."""
    picked = []
    for _, rows in final.groupby("noisy_label", sort=True):
        order = rows.sort_values(["clean_prob", "sample_index"], kind="stable")
        distrusted = order.head(low).assign(group="distrusted")
        clean = order.drop(distrusted.index).tail(high).iloc[::-1].assign(group="clean")
        for part in (distrusted, clean):
            picked.append(part.assign(rank=np.arange(len(part), dtype=np.int32)))
    return pd.concat(picked, ignore_index=True) if picked else final.head(0).assign(group="", rank=0)


def _judged(final: pd.DataFrame, predicted: np.ndarray, confidence: np.ndarray, tau: float) -> pd.DataFrame:
    codes, cleaned = decide(final["noisy_label"].to_numpy(), predicted, confidence, final["clean_prob"].to_numpy(), tau)
    return final.assign(predicted_label=predicted, confidence=confidence,
                        decision=np.asarray(DECISIONS)[codes], cleaned_label=cleaned)


def export_accuracy(judged: pd.DataFrame, true: np.ndarray) -> dict[str, float | int | None]:
    """The export's labels against the truth of `judged`'s samples (null where a set is empty).

    relabel accuracy: the relabelled samples whose new label is the true one; cleaned-label
    accuracy: every sample given a cleaned label (kept or relabelled) whose label is the true one.
    """
    relabelled = (judged["decision"] == "relabelled").to_numpy()
    labelled = judged["cleaned_label"].to_numpy() >= 0
    cleaned = judged["cleaned_label"].to_numpy()
    return {
        "export_relabel_accuracy": float((cleaned[relabelled] == true[relabelled]).mean()) if relabelled.any() else None,
        "export_relabelled_n": int(relabelled.sum()),
        "export_cleaned_accuracy": float((cleaned[labelled] == true[labelled]).mean()) if labelled.any() else None,
        "export_cleaned_n": int(labelled.sum()),
    }


def build_gallery(run: RunArtifacts, truth: Truth | None, *, checkpoint: Path, prepared: Path, noisy: Path,
                  device: str = "auto") -> tuple[pd.DataFrame, dict]:
    """The gallery (artifacts.GALLERY columns) and the export's figures on the known truth.

    The final networks predict only the gallery's samples and those whose truth is known (the
    verified subset; every sample with a full truth), not the whole training set.
    """
    epoch, final, params = final_division(run)
    picked = pick_samples(final)
    wanted = set(picked["sample_index"].tolist())
    if truth is not None:
        wanted |= set(np.flatnonzero(truth.known).tolist()) & set(final["sample_index"].tolist())
    judge = final[final["sample_index"].isin(wanted)].reset_index(drop=True)
    predicted, confidence, trained = ensemble_predictions(
        run.root, params, index=judge["sample_index"].to_numpy(), device=device,
        checkpoint=checkpoint, prepared=prepared, noisy=noisy,
    )
    if trained != epoch:
        raise ValueError(f"{checkpoint} is from epoch {trained} but the last division is epoch {epoch}; rerun train")
    judged = _judged(judge, predicted, confidence, float(params.get("train.p_threshold", DEFAULT_THRESHOLD)))
    gallery = picked[["sample_index", "group", "rank"]].merge(judged, on="sample_index", how="left")
    index = gallery["sample_index"].to_numpy()
    true = truth.labels[index] if truth is not None else np.full(len(index), -1, dtype=np.int64)
    gallery["true_label"] = pd.arrays.IntegerArray(true.astype(np.int64), mask=true < 0)  # null: unknown
    figures: dict = {}
    if truth is not None:
        known = judged[truth.known[judged["sample_index"].to_numpy()]]
        figures = export_accuracy(known, truth.labels[known["sample_index"].to_numpy()])
    columns = [field.name for field in artifacts.GALLERY]
    return gallery[columns], figures
