"""DVC stage `baseline`: plain cross-entropy on the same noisy labels, model and epochs (one network);
resumable per epoch."""

from dividemix.run.live import LiveLog
from dividemix.run.stage import run_stage
from dividemix.training.keys import OPTIMISER, SAMPLING, WORKSPACE

PARAMS = [
    *WORKSPACE, *OPTIMISER, *SAMPLING,
    "model.pretrained",
    "train.epochs",
]
PATHS = ["prepared", "noisy", "baseline", "resume", "live"]


def body(config, params, paths):
    from dividemix.training.baseline import run_baseline  # inside: after run_stage's signal handlers

    run_baseline(config, paths, params, live=LiveLog(paths.live / "baseline"))


if __name__ == "__main__":
    run_stage("baseline", PARAMS, PATHS, body, spreads=True)  # over distributed.* processes
