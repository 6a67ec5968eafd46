"""DVC stage `baseline`: plain cross-entropy on the same noisy labels, model and epochs (one network)."""

from dividemix.stage import run_stage
from dividemix.training import optim, sampling, workspace
from dividemix.training.baseline import run_baseline

PARAMS = [
    *workspace.PARAMS, *optim.PARAMS, *sampling.PARAMS,
    "model.pretrained",
    "train.epochs",
]
PATHS = ["prepared", "noisy", "baseline"]


def body(config, params, paths):
    run_baseline(config, paths, params)


if __name__ == "__main__":
    run_stage("baseline", PARAMS, PATHS, body)
