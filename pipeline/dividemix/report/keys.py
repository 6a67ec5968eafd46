"""The parameters the report reads: it prints them, and with them `presets.find_preset` finds the
run's paper cell. Plain names, so the report stage declares them before its slow imports."""

PARAM_KEYS = (  # the keys the report prints; with them, `presets.find_preset` finds the run's paper cell
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
