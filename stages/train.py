"""DVC stage `train`: co-divide + MixMatch epochs after warm-up; resumable per epoch.

A killed run resumes from its last finished epoch (`training.resume`); the library discards the
epochs of a run made from other inputs.
"""

from dividemix.run.live import LiveLog
from dividemix.run.stage import run_stage
from dividemix.training.keys import OPTIMISER, SAMPLING, WORKSPACE

PARAMS = [
    *WORKSPACE, *OPTIMISER, *SAMPLING,
    "train.epochs",
    "train.warmup_epochs",
    "train.alpha",
    "train.T",
    "train.lambda_u",
    "train.p_threshold",
    "train.rampup_epochs",
    "train.loss_history",
    "train.augment",  # images.views: the step's views
    "train.strong_policy",
    "train.selection",  # method.selection: the division's rule
    "train.selection_ensemble",
    "ablation.co_divide",
    "ablation.label_refinement",
    "ablation.co_guessing",
    "ablation.ensemble_test",
]
PATHS = ["prepared", "noisy", "warmup_checkpoint", "train_checkpoint", "artifacts", "resume", "live"]


def body(config, params, paths):
    from dividemix.training.train import run_train  # inside: after run_stage's signal handlers

    run_train(config, paths, params, live=LiveLog(paths.live / "train"))


if __name__ == "__main__":
    run_stage("train", PARAMS, PATHS, body, spreads=True)  # over distributed.* processes
