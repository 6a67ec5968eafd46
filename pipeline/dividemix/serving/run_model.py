"""A run's trained model: its two networks, which weights, and what they need to know of the data.

A run is a folder (a pipeline root) or a git revision / DVC experiment of a repository, read
through DVC as `dividemix diff` reads it (`audit.sources`): nothing is checked out. The networks
come from the train stage's checkpoint (`checkpoints/train/last.pt`): the final weights, or with a
validation set each network's best-validation weights (the ones `test_acc_best_val` measures).
Their architecture is the one the train stage recorded (`model.arch`); classes, input shape and
normalisation are the prepared folder's meta.json; the metrics are evaluate's, when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dividemix.audit.epochs import recorded_params
from dividemix.audit.sources import AuditError, RunSource, open_source
from dividemix.datasets.prepared import META, SPLIT_IMAGES, SPLIT_LABELS
from dividemix.files import layout
from dividemix.method.models import MODELS, build_model
from dividemix.serving.inputs import Preprocessing, ServingError
from dividemix.training.checkpoint import load_checkpoint

WEIGHTS = ("auto", "final", "best-val")
NETS = (1, 2)


@dataclass
class RunModel:
    """The two networks' weights of one run and what a prediction needs around them."""

    source: RunSource
    arch: str
    classes: list[str]
    preprocessing: Preprocessing
    params: dict[str, Any]  # as the train stage recorded them (dotted keys)
    weights: str  # "final" or "best-val"
    epoch: int  # the checkpoint's last finished epoch
    states: dict[int, dict[str, torch.Tensor]]
    val_acc: dict[int, float] | None = None  # best-val: each network's best validation accuracy
    metrics: dict[str, Any] | None = field(default=None)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """Which weights, in words, for the output and model.json."""
        planned = self.params.get("train.epochs")
        stopped = "" if planned is None or self.epoch >= planned - 1 else f" (a stopped run: {planned} epochs planned)"
        if self.weights == "final":
            return f"the final networks (after epoch {self.epoch}{stopped})"
        accs = " and ".join(f"{100 * self.val_acc[i]:.2f}%" for i in NETS)
        return f"each network's best-validation weights (validation accuracy {accs}; run at epoch {self.epoch}{stopped})"

    def networks(self, device: torch.device) -> tuple[nn.Module, nn.Module]:
        """net1 and net2 built as the run built them, their weights loaded, in eval mode on `device`."""
        nets = []
        for i in NETS:
            net = build_model(self.arch, self.num_classes, self.preprocessing.channels)
            net.load_state_dict(self.states[i])
            nets.append(net.to(device).eval())
        return nets[0], nets[1]

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's own prepared `split` (test, val, test2) as the networks' uint8 input and its labels."""
        if split not in SPLIT_LABELS:
            raise ServingError(f"--split {split}: allowed: {', '.join(SPLIT_LABELS)}")
        prepared = layout.PREPARED
        images = _load_npy(self.source, f"{prepared}/{SPLIT_IMAGES[split]}")
        labels = _load_npy(self.source, f"{prepared}/{SPLIT_LABELS[split]}")
        if len(images) == 0:
            raise ServingError(f"{self.source.where(prepared)}: the run has no {split} images")
        crop = self.preprocessing.crop
        if crop:  # stored data sets: the reference's evaluation crop at each row's own corner
            corners = _load_npy(self.source, f"{prepared}/{split}_crop.npy").astype(np.int64)
            rows = np.arange(crop)
            tops, lefts = corners[:, 0, None] + rows, corners[:, 1, None] + rows
            images = images[np.arange(len(images))[:, None, None, None], np.arange(images.shape[1])[None, :, None, None],
                            tops[:, None, :, None], lefts[:, None, None, :]]
        return np.ascontiguousarray(images), labels.astype(np.int64)


def _load_npy(source: RunSource, relative: str) -> np.ndarray:
    if not source.exists(relative):
        raise ServingError(f"{source.where(relative)}: not found; run the download stage (dvc repro) first")
    with source.open(relative) as handle:
        return np.load(handle, allow_pickle=False)


def _load_json(source: RunSource, relative: str) -> dict[str, Any] | None:
    if not source.exists(relative):
        return None
    with source.open(relative) as handle:
        text = Path(handle).read_text() if isinstance(handle, str) else handle.read().decode()
    return json.loads(text)


def open_run(run: str | Path = ".", *, rev: str | None = None, repo: str | Path = ".") -> RunSource:
    """The run folder `run`, or the revision / experiment `rev` of `repo`; one line when there is none."""
    if rev is not None:
        try:
            return open_source(rev, repo=repo)
        except AuditError as exc:
            raise ServingError(str(exc)) from None
    folder = Path(run)
    if not folder.is_dir():
        raise ServingError(f"{run}: no such run folder (a pipeline root holding {layout.TRAIN_CHECKPOINT})")
    return RunSource(str(run), str(folder))


def load_run_model(source: RunSource, *, weights: str = "auto") -> RunModel:
    """The run's networks (`weights`: auto = best-val where the run has a validation set, else final)."""
    if weights not in WEIGHTS:
        raise ServingError(f"--weights {weights}: allowed: {', '.join(WEIGHTS)}")
    checkpoint = layout.TRAIN_CHECKPOINT
    if not source.exists(checkpoint):
        raise ServingError(f"{source.where(checkpoint)}: no trained networks; run the train stage (dvc repro) first")
    meta = _load_json(source, f"{layout.PREPARED}/{META}")
    if meta is None:
        raise ServingError(f"{source.where(layout.PREPARED)}/{META}: no prepared data; run the download stage first")
    try:
        params = recorded_params(source)
    except (AuditError, OSError, IndexError) as exc:
        raise ServingError(f"{source.name}: cannot read the parameters the train stage recorded ({exc})") from None
    arch = params.get("model.arch")
    if arch not in MODELS:
        raise ServingError(f"{source.name}: model.arch {arch!r} is not a model this code builds; allowed: "
                           f"{', '.join(sorted(MODELS))}")
    with source.open(checkpoint) as handle:
        state = load_checkpoint(handle, torch.device("cpu"))
    best = state.get("best_val")
    has_best = best is not None and all(str(i) in best["weights"] for i in NETS)
    if weights == "best-val" and not has_best:
        raise ServingError(f"--weights best-val: {source.name} has no validation set, so no best-validation "
                           "weights; allowed here: auto, final")
    chosen = "best-val" if has_best and weights != "final" else "final"
    states = {i: (best["weights"] if chosen == "best-val" else state["nets"])[str(i)] for i in NETS}
    val_acc = {i: float(best["acc"][str(i)]) for i in NETS} if chosen == "best-val" else None
    return RunModel(source=source, arch=arch, classes=[str(c) for c in meta["classes"]],
                    preprocessing=Preprocessing.from_meta(meta), params=params, weights=chosen,
                    epoch=int(state["epoch"]), states=states, val_acc=val_acc,
                    metrics=_load_json(source, layout.EVAL_METRICS))
