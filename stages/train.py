"""DVC stage `train`: co-divide + MixMatch epochs after warm-up; resumable from its checkpoint.

Its outputs are `persist: true` in dvc.yaml so that a killed run resumes from the last finished
epoch instead of starting over; the library discards them when the inputs changed.
"""

from pathlib import Path

from dividemix.engine import Paths, run_train
from dividemix.stage import run_stage

PARAMS = [
    "data.dataset",
    "model.arch",
    "train.epochs",
    "train.warmup_epochs",
    "train.lr",
    "train.lr_drop_epoch",
    "train.momentum",
    "train.weight_decay",
    "train.batch_size",
    "train.alpha",
    "train.T",
    "train.lambda_u",
    "train.p_threshold",
    "train.rampup_epochs",
    "train.loss_history",
    "train.seed",
    "train.device",
    "train.protocol",
    "train.num_batches",
    "train.amp",
    "train.channels_last",
    "train.compile",
    "train.eval_batch_size",
    "ablation.co_divide",
    "ablation.label_refinement",
    "ablation.co_guessing",
    "ablation.augmentation",
    "ablation.ensemble_test",
]


def add_arguments(parser):
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--noisy", type=Path, required=True)
    parser.add_argument("--warmup-checkpoint", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True, help="resume checkpoint, written every epoch")
    parser.add_argument("--artifacts", type=Path, required=True, help="root of divisions/, mixtures/, losses/, epochs/")


def body(config, params, args):
    paths = Paths(
        prepared=args.prepared,
        noisy=args.noisy,
        warmup_checkpoint=args.warmup_checkpoint,
        train_checkpoint=args.checkpoint,
        artifacts=args.artifacts,
    )
    run_train(config, paths, params)


if __name__ == "__main__":
    run_stage("train", PARAMS, add_arguments, body)
