"""The parameters the report reads: it prints them, with them `presets.find_preset` finds the run's
paper cell, and `presets.preset_differences` says whether the run is like for like with it (every
parameter that changes the figure). Names only (the paper's presets import no torch), so the report
stage declares them before its slow imports."""

from dividemix.paper.presets import FIGURE_KEYS

PRINTED = (  # the keys the report prints
    "data.dataset",
    "data.truth_list",
    "noise.mode",
    "noise.rate",
    "noise.seed",
    "noise.file",
    "noise.key",
    "model.arch",
    "train.protocol",
    "train.epochs",
    "train.warmup_epochs",
    "train.lambda_u",
    "train.p_threshold",
    "train.loss_history",
)
PARAM_KEYS = tuple(dict.fromkeys(PRINTED + FIGURE_KEYS))  # printed, then those a paper cell is compared on
