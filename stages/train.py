"""DVC stage `train`: co-divide + MixMatch epochs after warm-up; resumable from its checkpoint.

Its outputs are `persist: true` in dvc.yaml so that a killed run resumes from the last finished
epoch instead of starting over; the library discards them when the inputs changed.
"""

from dividemix.stage import run_stage
from dividemix.training import optim, sampling, workspace
from dividemix.training.train import run_train

PARAMS = [
    *workspace.PARAMS, *optim.PARAMS, *sampling.PARAMS,
    "train.epochs",
    "train.warmup_epochs",
    "train.alpha",
    "train.T",
    "train.lambda_u",
    "train.p_threshold",
    "train.rampup_epochs",
    "train.loss_history",
    "ablation.co_divide",
    "ablation.label_refinement",
    "ablation.co_guessing",
    "ablation.ensemble_test",
]
PATHS = ["prepared", "noisy", "warmup_checkpoint", "train_checkpoint", "artifacts"]


def body(config, params, paths):
    run_train(config, paths, params)


if __name__ == "__main__":
    run_stage("train", PARAMS, PATHS, body)
