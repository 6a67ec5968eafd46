"""DVC stage `download`: prepare the data set (download or copy, verify, split) into --out."""

from pathlib import Path

from dividemix.data import prepare_dataset
from dividemix.io import atomic_dir
from dividemix.stage import run_stage

# data.raw_dir is the archive cache (an archive placed there is verified and used offline); the
# folder keys name the images and list files of data.dataset 'folder'.
PARAMS = [
    "data.dataset",
    "data.raw_dir",
    "data.url",
    "data.md5",
    "data.root",
    "data.train_list",
    "data.val_list",
    "data.test_list",
    "data.image_size",
]


def add_arguments(parser):
    parser.add_argument("--out", type=Path, required=True, help="prepared data folder")


def body(config, params, args):
    # Built under a temporary name and swapped in whole: a failed download leaves no half folder.
    with atomic_dir(args.out) as tmp:
        meta = prepare_dataset(config.data, tmp)
    val = f" / {meta['n_val']} val" if meta.get("has_val") else ""
    print(f"[download] {meta['dataset']}: {meta['n_train']} train{val} / {meta['n_test']} test images -> {args.out}")


if __name__ == "__main__":
    run_stage("download", PARAMS, add_arguments, body)
