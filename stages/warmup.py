"""DVC stage `warmup`: cross-entropy warm-up of both networks on the noisy labels."""

from dividemix.stage import run_stage
from dividemix.training import optim, sampling, workspace
from dividemix.training.warmup import run_warmup

PARAMS = [
    *workspace.PARAMS, *optim.PARAMS, *sampling.PARAMS,
    "model.pretrained",
    "train.warmup_epochs",
    "train.conf_penalty",
    "ablation.ensemble_test",
]
PATHS = ["prepared", "noisy", "warmup_checkpoint", "warmup_artifacts"]


def body(config, params, paths):
    run_warmup(config, paths, params)


if __name__ == "__main__":
    run_stage("warmup", PARAMS, PATHS, body)
