"""DVC stage `warmup`: cross-entropy warm-up of both networks on the noisy labels."""

from pathlib import Path

from dividemix.engine import Paths, run_warmup
from dividemix.stage import run_stage

PARAMS = [
    "data.dataset",
    "model.arch",
    "model.pretrained",
    "train.warmup_epochs",
    "train.lr",
    "train.lr_drop_epoch",
    "train.momentum",
    "train.weight_decay",
    "train.batch_size",
    "train.conf_penalty",
    "train.seed",
    "train.device",
    "train.protocol",
    "train.num_batches",
    "train.amp",
    "train.channels_last",
    "train.compile",
    "train.eval_batch_size",
    "ablation.augmentation",
    "ablation.ensemble_test",
]


def add_arguments(parser):
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--noisy", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True, help="both networks after warm-up")
    parser.add_argument("--artifacts", type=Path, required=True, help="warm-up epochs and losses (Parquet)")


def body(config, params, args):
    paths = Paths(
        prepared=args.prepared, noisy=args.noisy, warmup_checkpoint=args.checkpoint, warmup_artifacts=args.artifacts
    )
    run_warmup(config, paths, params)


if __name__ == "__main__":
    run_stage("warmup", PARAMS, add_arguments, body)
