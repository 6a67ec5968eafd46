"""The truth a run is judged against: every training label (digits, CIFAR) or a verified subset.

A folder data set has no training truth, but its user may know the true labels of some training
images (Clothing1M ships ~48k verified ones): `data.truth_list`, "path label" lines naming
training images. Only evaluation and the report read it, never training (tests/test_truth_wall.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dividemix.datasets.folder_lists import verified_subset
from dividemix.datasets.prepared import has_truth, load_train_paths, load_train_truth, read_meta
from dividemix.files import artifacts


@dataclass(frozen=True)
class Truth:
    """True labels of the training set where known: -1 elsewhere."""

    labels: np.ndarray  # (N,) int64, -1 where unknown
    noisy: np.ndarray  # (N,) the noisy labels training saw
    source: str  # "full" (every label) or "verified" (data.truth_list)

    @property
    def known(self) -> np.ndarray:
        return self.labels >= 0

    @property
    def clean(self) -> np.ndarray:
        """Noisy label == true label (False where unknown: use with `known`)."""
        return self.known & (self.noisy == self.labels)

    @property
    def n_known(self) -> int:
        return int(self.known.sum())


def truth_of(prepared: Path, noisy_labels: Path, truth_list: str | Path | None = None) -> Truth | None:
    """The run's truth: full when the data set has one, verified from `truth_list`, else None."""
    noisy = artifacts.read_table(noisy_labels, "noisy_labels")["noisy_label"].to_numpy()
    if has_truth(prepared):
        labels, source = load_train_truth(prepared), "full"
    elif truth_list is not None:
        rows, true = verified_subset(truth_list, load_train_paths(prepared), read_meta(prepared)["num_classes"])
        labels, source = np.full(len(noisy), -1, dtype=np.int64), "verified"
        labels[rows] = true
    else:
        return None
    if len(noisy) != len(labels):
        raise ValueError(f"{noisy_labels}: {len(noisy)} labels for {len(labels)} training samples")
    return Truth(np.asarray(labels, dtype=np.int64), noisy, source)
