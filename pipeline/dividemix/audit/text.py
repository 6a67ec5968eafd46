"""A diff in the terminal: its header lines and plain-text tables."""

from __future__ import annotations

import pandas as pd

from dividemix.audit.diff import DiffResult


def text_table(frame: pd.DataFrame) -> str:
    """A frame as a plain-text table: fractions with 4 decimals, undefined values as 'n/a'."""
    if frame.empty:
        return "(no rows)"
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.4f}")
    return shown.to_string(index=False)


def summary_columns(result: DiffResult) -> list[str]:
    """The summary's columns worth showing: quality columns only for a side whose truth is known."""
    columns = ["epoch", "net", "n_labeled_a", "n_labeled_b", "jaccard", "to_unlabeled", "to_labeled",
               "prob_shift", "prob_shift_abs"]
    for side, known in (("a", result.truth_a), ("b", result.truth_b)):
        if known:
            columns += [f"precision_{side}", f"recall_{side}", f"auc_{side}"]
    # a selection rule other than the GMM on either side: what each side's rule used (diff.rule_columns)
    columns += [c for key in ("rule", "cut", "quota") for c in (f"{key}_a", f"{key}_b") if c in result.summary.columns]
    return columns


def diff_header(result: DiffResult) -> list[str]:
    lines = [f"A = {result.name_a}", f"B = {result.name_b}"]
    lines += [f"note: {note}" for note in result.notes]
    for side, name, known in (("A", result.name_a, result.truth_a), ("B", result.name_b, result.truth_b)):
        if not known:
            lines.append(f"note: the true labels of {side} ({name}) are not at hand: no precision, recall or AUC")
    return lines
