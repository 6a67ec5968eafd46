"""DVC stage `download`: prepare the data set (download or copy, verify, split) into --prepared."""

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
PATHS = ["prepared"]


def body(config, params, paths):
    from dividemix.datasets.registry import prepare_dataset  # inside: after run_stage's signal handlers

    # Built under a temporary name and swapped in whole: a failed download leaves no half folder.
    with atomic_dir(paths.prepared) as tmp:
        meta = prepare_dataset(config.data, tmp)
    val = f" / {meta['n_val']} val" if meta.get("has_val") else ""
    print(f"[download] {meta['dataset']}: {meta['n_train']} train{val} / {meta['n_test']} test images -> {paths.prepared}")


if __name__ == "__main__":
    run_stage("download", PARAMS, PATHS, body)
