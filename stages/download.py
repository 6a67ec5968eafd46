"""DVC stage `download`: prepare the data set (download or copy, verify, split) into --out."""

from pathlib import Path

from dividemix.data import DATASETS
from dividemix.io import atomic_dir
from dividemix.stage import run_stage

PARAMS = ["data.dataset"]


def add_arguments(parser):
    parser.add_argument("--out", type=Path, required=True, help="prepared data folder")


def body(config, params, args):
    # Built under a temporary name and swapped in whole: a failed download leaves no half folder.
    with atomic_dir(args.out) as tmp:
        meta = DATASETS[config.data.dataset].prepare(tmp)
    print(f"[download] {meta['dataset']}: {meta['n_train']} train / {meta['n_test']} test images -> {args.out}")


if __name__ == "__main__":
    run_stage("download", PARAMS, add_arguments, body)
