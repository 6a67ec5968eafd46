"""A preset: the paper's setting for one table cell (dotted parameter overrides) and its numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dividemix.config import Config

# What every paper run of DivideMix shares: the full method (no ablation) on the GPU path.
FULL_METHOD = {f"ablation.{key}": True for key in
               ("co_divide", "label_refinement", "co_guessing", "augmentation", "ensemble_test")}
# Large images (ResNet-50 at 224 px, Inception-ResNet-v2 at 299 px): arithmetic dominates, bf16 pays.
GPU_PATH = {"train.amp": True, "train.channels_last": True}
# PreAct ResNet-18 at 32x32, B = 64: the step is bound by kernel launches; measured on an H200
# (docs/paper-scale.md), bf16 autocast slowed the isolated step (25.2 vs 18.3 ms with channels-last)
# and left the whole epoch unchanged (~22 s): so the reference's fp32.
CIFAR_GPU_PATH = {"train.amp": False, "train.channels_last": True}
# The opt-in switches beyond the paper: part of the cell of a preset that sets them (AugDesc-WS, UNICON).
SWITCH_KEYS = ("train.augment", "train.selection")



@dataclass(frozen=True)
class PaperFigure:
    """One published number and how it was measured, so a run is compared like for like.

    `metric` names the run's figure in metrics/eval.json: "test_acc" (top-1 on the test set),
    "test_top5", "test2_acc", "test2_top5" (the second test set). `protocol` says which of the
    run's values stands beside it: "best_val" (the official Clothing1M protocol: each network's
    best-validation weights, ensembled, tested once: `test_acc_best_val`), or "per_epoch" (the
    official code tests every epoch and the paper does not say which epoch it reports: the run's
    mean of the last 10 epochs, its last and its best epoch are shown).
    """

    label: str
    metric: str
    protocol: str
    value: float  # percent


# What each protocol's paper figure is, for the column and list labels that stand beside it.
PROTOCOL_NAMES = {
    "best_val": "the ensemble of each network's best-validation weights, tested once",
    "per_epoch": "one epoch of the official log, epochs 0-80, which the paper does not name",
}


@dataclass(frozen=True)
class Preset:
    name: str
    table: str  # cifar | cifar-n | clothing1m | webvision: the group `preset queue --table` takes
    description: str
    overrides: dict[str, Any]  # dotted key -> value, applied over params.yaml
    # percent; the paper's best-epoch accuracy (an oracle; CIFAR-N: its only number); None where the
    # paper's figures are of another kind (`figures`), so no "best" column ever shows them
    paper_best: float | None
    paper_last: float | None  # percent; mean of the last 10 epochs, where the paper gives it
    notes: tuple[str, ...] = field(default=())  # what the user must provide, departures, sources
    # The network behind the paper's figure when it is not this preset's model (CIFAR-N: the
    # CIFAR-N paper benchmarked every method with a ResNet-34), so no one compares across them unawares.
    paper_network: str | None = None
    # The paper's figures for a table with more than "best" and "last" (Clothing1M, WebVision):
    # each compared with the run's own figure of the same protocol (`PaperFigure`).
    figures: tuple["PaperFigure", ...] = ()

    def __post_init__(self) -> None:
        # Keys in params.yaml's section order (data, noise, model, train, ablation): for reading.
        order = {section: i for i, section in enumerate(Config.model_fields)}
        ordered = dict(sorted(self.overrides.items(), key=lambda item: order[item[0].split(".")[0]]))
        object.__setattr__(self, "overrides", ordered)

    def match_keys(self) -> tuple[str, ...]:
        """The keys that define the paper's cell (the data and its noise), not the hyper-parameters."""
        if self.overrides["noise.mode"] == "file":
            return ("data.dataset", "noise.mode", "noise.file", "noise.key", "train.protocol")
        if self.figures:  # Clothing1M and WebVision: the data set is the cell
            return ("data.dataset", "noise.mode", "train.protocol")
        switches = tuple(key for key in SWITCH_KEYS if key in self.overrides)  # a successor's cell
        return ("data.dataset", "noise.mode", "noise.rate", "train.protocol", *switches)
