"""How two divisions of the same samples differ, and how good one is against the true clean mask."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two boolean masks; 1.0 when both sets are empty (they are equal)."""
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of `score` for the boolean `positive` (ties count one half); NaN when undefined.

    The Mann-Whitney count: for each positive, the negatives scored below it plus half those tied
    with it, found by binary search in the sorted negative scores. The same value as sklearn's
    roc_auc_score, about four times faster (the diff computes four per epoch).
    """
    negatives = np.sort(score[~positive])
    positives = np.sort(score[positive])
    if len(positives) == 0 or len(negatives) == 0:
        return math.nan
    below = np.searchsorted(negatives, positives, "left").sum()
    below_or_tied = np.searchsorted(negatives, positives, "right").sum()
    return float(below + below_or_tied) / (2.0 * len(positives) * len(negatives))


def division_measures(labeled: np.ndarray, clean_prob: np.ndarray, clean: np.ndarray | None) -> dict[str, float]:
    """precision, recall and AUC of one division against the true clean mask (NaN when undefined)."""
    if clean is None:
        return {"precision": math.nan, "recall": math.nan, "auc": math.nan}
    n_labeled = int(np.count_nonzero(labeled))
    n_clean = int(np.count_nonzero(clean))
    hits = int(np.count_nonzero(labeled & clean))
    return {
        "precision": hits / n_labeled if n_labeled else math.nan,
        "recall": hits / n_clean if n_clean else math.nan,
        "auc": auc(clean, clean_prob),
    }


def compare_divisions(
    labeled_a: np.ndarray, labeled_b: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray
) -> dict[str, float]:
    """How division B differs from division A of the same samples."""
    shift = prob_b.astype(np.float64) - prob_a
    return {
        "n_labeled_a": int(np.count_nonzero(labeled_a)),
        "n_labeled_b": int(np.count_nonzero(labeled_b)),
        "jaccard": jaccard(labeled_a, labeled_b),
        "to_unlabeled": int(np.count_nonzero(labeled_a & ~labeled_b)),
        "to_labeled": int(np.count_nonzero(~labeled_a & labeled_b)),
        "prob_shift": float(shift.mean()) if len(shift) else math.nan,
        "prob_shift_abs": float(np.abs(shift).mean()) if len(shift) else math.nan,
    }


def compare_by_class(
    classes: np.ndarray, labeled_a: np.ndarray, labeled_b: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray,
    clean_a: np.ndarray | None, clean_b: np.ndarray | None, num_classes: int,
) -> pd.DataFrame:
    """`compare_divisions` (and precision/recall) within each class, vectorised with bincount."""

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(classes[mask], minlength=num_classes)

    size = np.bincount(classes, minlength=num_classes)
    both, either = count(labeled_a & labeled_b), count(labeled_a | labeled_b)
    shift = np.bincount(classes, weights=prob_b.astype(np.float64) - prob_a, minlength=num_classes)
    shift_abs = np.bincount(classes, weights=np.abs(prob_b.astype(np.float64) - prob_a), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = {
            "class": np.arange(num_classes),
            "n": size,
            "n_labeled_a": count(labeled_a),
            "n_labeled_b": count(labeled_b),
            "jaccard": np.where(either > 0, both / np.maximum(either, 1), 1.0),
            "to_unlabeled": count(labeled_a & ~labeled_b),
            "to_labeled": count(~labeled_a & labeled_b),
            "prob_shift": shift / size,
            "prob_shift_abs": shift_abs / size,
        }
        for side, labeled, clean in (("a", labeled_a, clean_a), ("b", labeled_b, clean_b)):
            if clean is None:
                table[f"precision_{side}"] = np.full(num_classes, np.nan)
                table[f"recall_{side}"] = np.full(num_classes, np.nan)
                continue
            hits, n_labeled, n_clean = count(labeled & clean), count(labeled), count(clean)
            table[f"precision_{side}"] = np.where(n_labeled > 0, hits / n_labeled, np.nan)
            table[f"recall_{side}"] = np.where(n_clean > 0, hits / n_clean, np.nan)
    return pd.DataFrame(table)


def side_measures(side: str, labeled: np.ndarray, prob: np.ndarray, clean: np.ndarray | None) -> dict[str, float]:
    """`division_measures` of one side, its keys suffixed with the side (precision_a, ...)."""
    return {f"{key}_{side}": value for key, value in division_measures(labeled, prob, clean).items()}
