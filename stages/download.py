"""DVC stage `download`: prepare the data set (download or copy, verify, split) into --prepared."""

import json

from dividemix.files.atomic import atomic_dir
from dividemix.run.stage import run_stage

# data.raw_dir is the archive cache (an archive placed there is verified and used offline); the
# folder keys name the images and list files of a stored data set (folder, clothing1m, webvision),
# its classes and how its images are stored.
# (data.workers and data.storage change no byte of the output: not parameters of this stage.)
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
    "data.resize",
    "data.train_crop",
    "data.mean",
    "data.std",
    "data.num_classes",
    "data.test2_list",
    "data.imagenet_val",
]
PATHS = ["sources", "prepared"]


def body(config, params, paths):
    from dividemix.datasets.registry import prepare_dataset  # inside: after run_stage's signal handlers
    from dividemix.datasets.sources import manifest

    # Built under a temporary name and swapped in whole: a failed download leaves no half folder.
    with atomic_dir(paths.prepared) as tmp:
        meta = prepare_dataset(config.data, tmp)
        if manifest(config.data) != json.loads(paths.sources.read_text()):
            raise ValueError(f"the data set's sources changed while download ran (or since {paths.sources} was "
                             "written); run `dvc repro` again")
    val = f" / {meta['n_val']} val" if meta["has_val"] else ""
    test2 = f" / {meta['n_test2']} {meta['test2_name']}" if meta["has_test2"] else ""
    print(f"[download] {meta['dataset']}: {meta['n_train']} train{val} / {meta['n_test']} test{test2} images -> "
          f"{paths.prepared}")


if __name__ == "__main__":
    run_stage("download", PARAMS, PATHS, body)
