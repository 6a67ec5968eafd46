"""Evaluation: where the true training labels meet the artifacts (and nowhere earlier).

Reads the per-epoch artifacts of warm-up, DivideMix and the baseline, and the truth, and gives
the accuracy curves, the quality of each epoch's division and the summary metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from sklearn.metrics import roc_auc_score

from dividemix.files import artifacts
from dividemix.judging.truth import Truth


@dataclass(frozen=True)
class RunArtifacts:
    """Where one run's artifacts live (the layout of `dividemix.files.artifacts`)."""

    root: Path = Path("artifacts")

    @property
    def warmup(self) -> Path:
        return self.root / "warmup"

    @property
    def baseline(self) -> Path:
        return self.root / "baseline"

    def epochs(self) -> pd.DataFrame:
        """Warm-up and DivideMix epochs in one table (one row per epoch)."""
        warm = artifacts.read_table(self.warmup / "epochs.parquet", "epochs")
        main = artifacts.read_table(self.root / "epochs", "epochs")
        return pd.concat([warm, main], ignore_index=True)

    def baseline_epochs(self) -> pd.DataFrame:
        return artifacts.read_table(self.baseline / "epochs.parquet", "baseline_epochs")

    def divisions(self, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pd.DataFrame:
        """The divisions, reading only `columns` and the files `filter` (e.g. one epoch) selects."""
        return artifacts.read_table(self.root / "divisions", "divisions", columns=columns, filter=filter)

    def mixtures(self) -> pd.DataFrame:
        return artifacts.read_table(self.root / "mixtures", "mixtures")

    def losses(self) -> pd.DataFrame:
        """Every step's losses, warm-up included."""
        warm = artifacts.read_table(self.warmup / "losses.parquet", "losses")
        main = artifacts.read_table(self.root / "losses", "losses")
        return pd.concat([warm, main], ignore_index=True)


def accuracy_curves(run: RunArtifacts) -> pd.DataFrame:
    """Per-epoch test accuracy: DivideMix ensemble, each network, the baseline (fractions)."""
    epochs = run.epochs()
    base = run.baseline_epochs().rename(columns={"test_acc": "baseline"})
    curves = pd.DataFrame(
        {
            "epoch": epochs["epoch"].astype(int),
            "phase": epochs["phase"],
            "dividemix": epochs["test_acc_ensemble"],
            "net1": epochs["test_acc_net1"],
            "net2": epochs["test_acc_net2"],
        }
    )
    if "test_acc_best_val" in epochs and epochs["test_acc_best_val"].notna().any():
        # With a clean validation set (the Clothing1M protocol): the test ensemble of the
        # best-validation weights, the figure the paper reports for Clothing1M.
        curves["best_val"] = epochs["test_acc_best_val"]
    for figure, column in EXTRA_CURVES.items():  # top-5, the second test set: where measured
        if epochs[column].notna().any():
            curves[figure] = epochs[column]
    return curves.merge(base, on="epoch", how="outer").sort_values("epoch").reset_index(drop=True)


# The ensemble's other figures, where the run has them: the accuracy curve's name -> EPOCHS column.
# In metrics/eval.json each gives FIGURE_last10, FIGURE_last and FIGURE_best (null without it).
EXTRA_CURVES = {"test_top5": "test_top5_ensemble", "test2_acc": "test2_acc_ensemble", "test2_top5": "test2_top5_ensemble"}


def _auc(clean: np.ndarray, score: np.ndarray) -> float:
    # Undefined when every sample is clean (or none is): reported as NaN, never as a made-up 1.0.
    if clean.all() or not clean.any():
        return math.nan
    return float(roc_auc_score(clean, score))


def division_quality(run: RunArtifacts, truth: Truth | None) -> pd.DataFrame:
    """Per epoch and network: the labeled set judged against the truth, where it is known.

    precision = fraction of the labeled set that is truly clean; recall = fraction of the truly
    clean samples that were labeled; auc = ROC AUC of clean_prob for the clean mask; n_truth =
    the divided samples these rest on (all of them, or those of the verified subset). With no
    truth only the labeled-set size is known; the rest is NaN.
    """
    divisions = run.divisions(columns=["epoch", "net", "sample_index", "clean_prob", "labeled"])
    rows = []
    for (epoch, net), group in divisions.groupby(["epoch", "net"], sort=True):
        labeled = group["labeled"].to_numpy()
        row = {"epoch": int(epoch), "net": int(net), "n_labeled": int(labeled.sum()),
               "auc": math.nan, "precision": math.nan, "recall": math.nan, "n_truth": 0}
        if truth is not None:
            index = group["sample_index"].to_numpy()
            known = truth.known[index]
            is_clean, labeled, prob = truth.clean[index][known], labeled[known], group["clean_prob"].to_numpy()[known]
            row |= {
                "auc": _auc(is_clean, prob) if len(is_clean) else math.nan,
                "precision": float(is_clean[labeled].mean()) if labeled.any() else math.nan,
                "recall": float(labeled[is_clean].mean()) if is_clean.any() else math.nan,
                "n_truth": int(known.sum()),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float | None:
    value = float(values.mean())
    return None if math.isnan(value) else value


LAST_EPOCHS = 10  # the paper's "last": the mean test accuracy of the last 10 epochs


def summary_metrics(curves: pd.DataFrame, quality: pd.DataFrame, truth: Truth | None) -> dict:
    """The metrics of metrics/eval.json, the paper's headline first; fractions, null when undefined.

    `test_acc_last10` is the paper's "last": the mean over the last 10 *DivideMix* epochs (from
    `test_acc_last10_from_epoch` on), null when the run has fewer (never averaged over warm-up).
    `test_acc_best` is the best epoch's, chosen on the test set itself: an oracle, optimistic.
    """
    dm = curves["dividemix"].dropna()
    trained = curves[curves["phase"] == "dividemix"].dropna(subset=["dividemix"])
    last10 = trained.iloc[-LAST_EPOCHS:] if len(trained) >= LAST_EPOCHS else None
    ce = curves["baseline"].dropna()
    last = quality[quality["epoch"] == quality["epoch"].max()]
    return {
        "test_acc_last10": None if last10 is None else float(last10["dividemix"].mean()),
        "test_acc_last10_from_epoch": None if last10 is None else int(last10["epoch"].iloc[0]),
        "test_acc_last": float(dm.iloc[-1]),
        "test_acc_best": float(dm.max()),
        "ce_test_acc_best": float(ce.max()),
        "ce_test_acc_last": float(ce.iloc[-1]),
        "division_auc_last": _mean(last["auc"]),
        "division_precision_last": _mean(last["precision"]),
        "division_recall_last": _mean(last["recall"]),
        # what the division figures rest on: "full" truth, a "verified" subset, or none (null)
        "truth": None if truth is None else truth.source,
        "division_truth_n_last": None if truth is None else int(last["n_truth"].min()),
        "noise_rate_actual": None if truth is None else float(1.0 - truth.clean[truth.known].mean()),
        "test_acc_best_val": float(curves["best_val"].dropna().iloc[-1]) if "best_val" in curves else None,
        **{key: value for figure in EXTRA_CURVES for key, value in figure_metrics(curves, figure).items()},
    }


def figure_metrics(curves: pd.DataFrame, figure: str) -> dict:
    """FIGURE_last10 (the mean over the same last 10 DivideMix epochs as the headline; null with
    fewer), FIGURE_last and FIGURE_best (an oracle, as test_acc_best) of one extra curve."""
    if figure not in curves:
        return {f"{figure}_last10": None, f"{figure}_last": None, f"{figure}_best": None}
    values = curves[figure].dropna()
    trained = curves[curves["phase"] == "dividemix"].dropna(subset=[figure])
    last10 = trained.iloc[-LAST_EPOCHS:] if len(trained) >= LAST_EPOCHS else None
    return {f"{figure}_last10": None if last10 is None else float(last10[figure].mean()),
            f"{figure}_last": float(values.iloc[-1]), f"{figure}_best": float(values.max())}


def division_plot_table(quality: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch, one column per (measure, network): the shape `dvc plots` draws."""
    wide = quality.pivot(index="epoch", columns="net", values=["auc", "precision", "recall", "n_labeled"])
    wide.columns = [f"{measure}_net{net}" for measure, net in wide.columns]
    return wide.reset_index()
