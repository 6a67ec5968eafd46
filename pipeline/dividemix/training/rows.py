"""An epoch's rows for the artifacts (`dividemix.files.artifacts` schemas), built from what it computed.

Per-step losses stay on the device during the epoch and come to the host once
(`mixmatch.StepLosses.to_host`): the step loops never synchronise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dividemix.files import artifacts

if TYPE_CHECKING:  # types only: warm-up writes rows too, and must not depend on the co-divide code
    from dividemix.method.codivide import Division
    from dividemix.training.testing import Accuracies, EpochTests, Validation


def loss_rows(epoch: int, net_id: int, lr: float, *, lambda_u: list[float], losses: dict[str, list[float]],
              n_labeled: int, n_unlabeled: int) -> dict:
    """The LOSSES rows of one network's epoch: one per step; `losses` the per-step lists of each
    term (`StepLosses.to_host`)."""
    steps = len(lambda_u)
    return {
        "epoch": [epoch] * steps, "net": [net_id] * steps, "step": list(range(steps)), "lr": [lr] * steps,
        "lambda_u": lambda_u, **{name: losses[name] for name in ("loss_x", "loss_u", "penalty", "loss")},
        "n_labeled": [n_labeled] * steps, "n_unlabeled": [n_unlabeled] * steps,
    }


def merge_rows(*parts: dict) -> dict:
    return {key: [value for part in parts for value in part[key]] for key in parts[0]}


def division_rows(epoch: int, divisions: dict[int, Division], noisy_labels: np.ndarray) -> dict:
    """One row per network and divided sample (all N, or the Clothing1M protocol's sample)."""
    rows: dict[str, list] = {name: [] for name in artifacts.DIVISIONS.names}
    for net_id, d in divisions.items():
        index = d.indices()
        n = len(index)
        rows["epoch"].append(np.full(n, epoch, dtype=np.int32))
        rows["net"].append(np.full(n, net_id, dtype=np.int8))
        rows["sample_index"].append(index)
        rows["noisy_label"].append(noisy_labels if d.sample_index is None else noisy_labels[index])
        rows["loss"].append(d.loss.astype(np.float32))
        rows["loss_norm"].append(d.loss_norm.astype(np.float32))
        rows["clean_prob"].append(d.clean_prob.astype(np.float32))
        rows["labeled"].append(d.labeled)
    return {key: np.concatenate(value) for key, value in rows.items()}


def selection_notes(divisions: dict[int, Division]) -> dict:
    """The division file's metadata beyond its parameters: each network's record of a rule other
    than the GMM (`{"selection": {"1": {...}, "2": {...}}}`: its cut, ratio, per-class quotas),
    nothing for the GMM, whose files stay as they always were (its record is the mixtures')."""
    records = {str(net_id): d.record for net_id, d in divisions.items() if d.record is not None}
    return {"selection": records} if records else {}


def mixture_rows(epoch: int, divisions: dict[int, Division]) -> dict:
    """Each network's two fitted components; none for a rule without a mixture."""
    rows: dict[str, list] = {name: [] for name in artifacts.MIXTURES.names}
    for net_id, d in divisions.items():
        m = d.mixture
        if m is None:
            continue
        for component in (0, 1):
            rows["epoch"].append(epoch)
            rows["net"].append(net_id)
            rows["component"].append(component)
            rows["mean"].append(m.means[component])
            rows["variance"].append(m.variances[component])
            rows["weight"].append(m.weights[component])
            rows["clean"].append(component == m.clean)
    return rows


def epoch_row(epoch: int, phase: str, tests: EpochTests, labeled: dict[int, int] | None,
              val: Validation | None = None) -> dict:
    """One EPOCHS row (columns of one value); `val` with a validation set."""
    test, test2 = tests.test, tests.test2
    return {
        "epoch": [epoch],
        "phase": [phase],
        **_accuracy_columns("test_acc", test, "top1"),
        "labeled_by_net1": [labeled[1] if labeled else None],
        "labeled_by_net2": [labeled[2] if labeled else None],
        "val_acc_net1": [val.net1 if val else None],
        "val_acc_net2": [val.net2 if val else None],
        "test_acc_best_val": [val.best_test if val else None],
        **_accuracy_columns("test_top5", test, "top5"),
        **_accuracy_columns("test2_acc", test2, "top1"),
        **_accuracy_columns("test2_top5", test2, "top5"),
    }


def _accuracy_columns(prefix: str, accs: Accuracies | None, k: str) -> dict:
    return {f"{prefix}_{model}": [None if accs is None else getattr(getattr(accs, model), k)]
            for model in ("net1", "net2", "ensemble")}


# The DVCLive name of each EPOCHS column (`live.LiveLog`): what `dvc exp show` shows per epoch.
FIGURES = {
    "test_acc_ensemble": "test_acc/ensemble", "test_acc_net1": "test_acc/net1", "test_acc_net2": "test_acc/net2",
    "labeled_by_net1": "labeled/by_net1", "labeled_by_net2": "labeled/by_net2",
    "val_acc_net1": "val_acc/net1", "val_acc_net2": "val_acc/net2", "test_acc_best_val": "test_acc/best_val",
    **{f"{figure}_{model}": f"{figure}/{model}" for figure in ("test_top5", "test2_acc", "test2_top5")
       for model in ("ensemble", "net1", "net2")},
}


def epoch_figures(record: dict, lr: float) -> dict:
    """An EPOCHS record (one row, as a mapping) as DVCLive figures, with the epoch's learning rate;
    a missing figure (null, or NaN once read through pandas) is None."""
    def known(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return {name: known(record[column]) for column, name in FIGURES.items()} | {"lr": lr}


def single(row: dict) -> dict:
    """The one record of a one-row table given as columns (`epoch_row`'s form)."""
    return {key: values[0] for key, values in row.items()}
