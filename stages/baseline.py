"""DVC stage `baseline`: plain cross-entropy on the same noisy labels, model and epochs (one network)."""

from pathlib import Path

from dividemix.engine import Paths, run_baseline
from dividemix.stage import run_stage

PARAMS = [
    "data.dataset",
    "model.arch",
    "model.pretrained",
    "train.epochs",
    "train.lr",
    "train.lr_drop_epoch",
    "train.momentum",
    "train.weight_decay",
    "train.batch_size",
    "train.seed",
    "train.device",
    "train.protocol",
    "train.num_batches",
    "train.amp",
    "train.channels_last",
    "train.compile",
    "train.eval_batch_size",
    "ablation.augmentation",
]


def add_arguments(parser):
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--noisy", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="baseline epochs and losses (Parquet)")


def body(config, params, args):
    run_baseline(config, Paths(prepared=args.prepared, noisy=args.noisy, baseline=args.out), params)


if __name__ == "__main__":
    run_stage("baseline", PARAMS, add_arguments, body)
