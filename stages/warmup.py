"""DVC stage `warmup`: cross-entropy warm-up of both networks on the noisy labels; resumable per epoch."""

from dividemix.run.live import LiveLog
from dividemix.run.stage import run_stage
from dividemix.training.keys import OPTIMISER, SAMPLING, WORKSPACE

PARAMS = [
    *WORKSPACE, *OPTIMISER, *SAMPLING,
    "model.pretrained",
    "train.warmup_epochs",
    "train.conf_penalty",
    "ablation.ensemble_test",
]
PATHS = ["prepared", "noisy", "warmup_checkpoint", "warmup_artifacts", "resume", "live"]


def body(config, params, paths):
    from dividemix.training.warmup import run_warmup  # inside: after run_stage's signal handlers

    run_warmup(config, paths, params, live=LiveLog(paths.live / "warmup"))


if __name__ == "__main__":
    run_stage("warmup", PARAMS, PATHS, body, spreads=True)  # over distributed.* processes
