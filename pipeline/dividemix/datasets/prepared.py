"""The prepared-folder format: what `download` writes and every later stage reads.

Layout of a prepared folder::

    meta.json                 the data set's name, classes, image shape, pixel scale, mean/std,
                              transforms (crop_padding, crop_size, train_crop, hflip), asymmetric-
                              noise map, sizes, has_truth, has_val, each image file's content
                              digest, format (written last: it marks completion)
    train_images.npy          (N, C, H, W) uint8 (a folder data set's: the store, `image_store`)
    train_paths.txt           folder data sets only: row i's image path, as in the training list
    train_truth.npy           (N,) int64   -- true training labels: never read by training
                                              (absent for folder data sets: truth unknown)
    train_given_labels.npy    (N,) int64   -- folder data sets only: the training list's labels
                                              (already noisy); read by the noise stage only
    val_images.npy            (V, C, H, W) uint8 -- a clean validation set (folder data sets with
    val_labels.npy            (V,) int64         data.val_list, Clothing1M); V = 0 (empty) otherwise
    test_images.npy           (M, C, H, W) uint8
    test_labels.npy           (M,) int64   -- the held-out clean test set, used to report accuracy
    test2_images.npy          (M2, C, H, W) uint8 -- a second test set (WebVision: ImageNet val of the
    test2_labels.npy          (M2,) int64        same classes; a folder's data.test2_list), evaluated
                                                 like the first; M2 = 0 (empty files) otherwise
    SPLIT_crop.npy            (n, 2) int16 -- stored data sets: per row, the top-left corner (in
                                              the stored square) of the reference's evaluation
                                              crop, CenterCrop(image_size) of the resized image

meta.json carries everything the training stages need to know of the data set (`spec_from_meta`),
so they read this folder alone and never import the code that made it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dividemix.datasets.spec import DatasetSpec
from dividemix.files.atomic import write_atomic, write_json_atomic

TRAIN_IMAGES = "train_images.npy"
TRAIN_PATHS = "train_paths.txt"
TRAIN_TRUTH = "train_truth.npy"
TEST_IMAGES = "test_images.npy"
TEST_LABELS = "test_labels.npy"
TRAIN_GIVEN = "train_given_labels.npy"
VAL_IMAGES = "val_images.npy"
VAL_LABELS = "val_labels.npy"
TEST2_IMAGES = "test2_images.npy"
TEST2_LABELS = "test2_labels.npy"
META = "meta.json"
# Bumped whenever meta.json or the files change; an older folder is refused (rerun download).
FORMAT = 4
SPLIT_IMAGES = {"train": TRAIN_IMAGES, "val": VAL_IMAGES, "test": TEST_IMAGES, "test2": TEST2_IMAGES}
SPLIT_LABELS = {"val": VAL_LABELS, "test": TEST_LABELS, "test2": TEST2_LABELS}
EVAL_SPLITS = ("val", "test", "test2")  # the clean, labeled splits (val and test2 may be empty)

ImageArrays = tuple[np.ndarray, np.ndarray]  # (images (N, C, H, W) uint8, labels (N,) int64)


def write_prepared(
    spec: DatasetSpec,
    dest: Path,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    val: ImageArrays | None = None,
    has_truth: bool = True,
    extra_meta: dict | None = None,
) -> dict:
    """Write a prepared folder from in-memory arrays (digits, CIFAR); meta.json last.

    `has_truth=False`: `train_labels` are the given, already noisy labels (train_given_labels.npy).
    """
    dest.mkdir(parents=True, exist_ok=True)
    empty = np.zeros((0, *np.shape(train_images)[1:]), dtype=np.uint8)
    # The validation and second-test files always exist (empty without such a set), so that every
    # prepared folder has the same files whatever the data set.
    images = {"train": train_images, "test": test_images, "val": val[0] if val is not None else empty,
              "test2": empty}
    digests = {}
    for split, array in images.items():
        array = np.ascontiguousarray(array, dtype=np.uint8)
        write_atomic(dest / SPLIT_IMAGES[split], lambda tmp, a=array: save_npy(tmp, a))
        digests[split] = rows_digest(array)
    no_labels = np.zeros(0, dtype=np.int64)
    labels = {"test": test_labels, "val": val[1] if val is not None else no_labels, "test2": no_labels}
    return finish_prepared(spec, dest, train_labels, labels, has_truth=has_truth,
                           image_shape=np.shape(train_images)[1:], digests=digests, extra_meta=extra_meta)


def finish_prepared(spec: DatasetSpec, dest: Path, train_labels: np.ndarray, eval_labels: dict[str, np.ndarray], *,
                    has_truth: bool, image_shape, digests: dict[str, str], extra_meta: dict | None = None) -> dict:
    """The label files and meta.json beside image files already written (meta.json last: complete).

    `eval_labels`: the clean labels of "test", "val" and "test2" (the last two may be empty).
    """
    labels = {TRAIN_TRUTH if has_truth else TRAIN_GIVEN: train_labels,
              **{SPLIT_LABELS[split]: eval_labels[split] for split in EVAL_SPLITS}}
    for name, array in labels.items():
        array = np.ascontiguousarray(array, dtype=np.int64)
        # np.save appends ".npy" to a name without it, so write through an open handle.
        write_atomic(dest / name, lambda tmp, a=array: save_npy(tmp, a))
    meta = {
        **spec_meta(spec),
        "image_shape": [int(d) for d in image_shape],
        "n_train": int(len(train_labels)),
        "n_test": int(len(eval_labels["test"])),
        "n_val": int(len(eval_labels["val"])),
        "n_test2": int(len(eval_labels["test2"])),
        "has_truth": has_truth,
        "has_val": len(eval_labels["val"]) > 0,
        "has_test2": len(eval_labels["test2"]) > 0,
        # What the images are, so that a checkpoint's fingerprint reads meta.json, never the images.
        "images_sha256": dict(sorted(digests.items())),
        "format": FORMAT,
        **(extra_meta or {}),
    }
    write_json_atomic(dest / META, meta)
    return meta


def rows_digest(images: np.ndarray) -> str:
    """SHA-256 over the SHA-256 of each row, in row order: the same for a store written in parallel."""
    digest = hashlib.sha256()
    for row in images:
        digest.update(hashlib.sha256(np.ascontiguousarray(row).tobytes()).digest())
    return digest.hexdigest()


def spec_meta(spec: DatasetSpec) -> dict:
    """The spec's entries of meta.json (JSON: the asymmetric map's keys become strings)."""
    asym = None if spec.asym_map is None else {str(k): int(v) for k, v in sorted(spec.asym_map.items())}
    return {
        "dataset": spec.name,
        "num_classes": spec.num_classes,
        "classes": list(spec.classes),
        "pixel_scale": spec.pixel_scale,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "crop_padding": spec.crop_padding,
        "hflip": spec.hflip,
        "asym_map": asym,
        "crop_size": spec.crop_size,
        "train_crop": spec.train_crop,
    }


def spec_from_meta(meta: dict) -> DatasetSpec:
    """The spec a prepared folder was made with, as its meta.json records it."""
    asym = meta["asym_map"]
    return DatasetSpec(
        name=meta["dataset"],
        num_classes=int(meta["num_classes"]),
        classes=tuple(meta["classes"]),
        pixel_scale=float(meta["pixel_scale"]),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        crop_padding=int(meta["crop_padding"]),
        hflip=bool(meta["hflip"]),
        asym_map=None if asym is None else {int(k): int(v) for k, v in asym.items()},
        crop_size=int(meta["crop_size"]),
        train_crop=meta["train_crop"],
    )


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def read_meta(prepared: Path, *, dataset: str | None = None) -> dict:
    """The prepared folder's meta.json; with `dataset`, refuse a folder prepared for another one."""
    path = Path(prepared) / META
    if not path.exists():
        raise FileNotFoundError(f"{path}: prepared data set missing; run the download stage first")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: prepared in format {meta.get('format', 1)}, this code reads format {FORMAT}; "
            "rerun the download stage (dvc repro -f download)"
        )
    if dataset is not None and meta["dataset"] != dataset:
        raise ValueError(f"{prepared}: prepared data set is {meta['dataset']!r} but data.dataset is {dataset!r}")
    return meta


def has_truth(prepared: Path) -> bool:
    """Whether the training truth is known (train_truth.npy exists): false for folder data sets.

    Evaluation and the report must skip every truth-based figure (division AUC, precision and
    recall, the actual noise rate, clean/noisy loss histograms) when this is false.
    """
    return bool(read_meta(prepared).get("has_truth", True))


def load_val_set(prepared: Path) -> ImageArrays | None:
    """The clean validation set (images, labels), when the data set has one (folder with a val list)."""
    prepared = Path(prepared)
    if not read_meta(prepared).get("has_val", False):
        return None
    return (
        np.load(prepared / VAL_IMAGES, allow_pickle=False),
        np.load(prepared / VAL_LABELS, allow_pickle=False),
    )


def load_train_images(prepared: Path) -> np.ndarray:
    return np.load(Path(prepared) / TRAIN_IMAGES, allow_pickle=False)


def images_path(prepared: Path, split: str) -> Path:
    """The image file of `split` (train, val, test): what a streamed image set reads."""
    return Path(prepared) / SPLIT_IMAGES[split]


def split_labels(prepared: Path, split: str) -> np.ndarray:
    """The clean labels of the test, val or test2 split."""
    return np.load(Path(prepared) / SPLIT_LABELS[split], allow_pickle=False)


def crop_path(prepared: Path, split: str) -> Path:
    """The per-row corners of the reference's evaluation crop (stored data sets only)."""
    return Path(prepared) / f"{split}_crop.npy"


def eval_crop_corners(prepared: Path, split: str) -> np.ndarray | None:
    """(n, 2) int64 top-left corners of the evaluation crop in each stored row, None where the
    data set has none (digits, CIFAR: the stored image is the network's input)."""
    path = crop_path(prepared, split)
    return np.load(path, allow_pickle=False).astype(np.int64) if path.exists() else None


def load_train_paths(prepared: Path) -> list[str]:
    """A folder data set's image paths in row order (as the training list writes them)."""
    return (Path(prepared) / TRAIN_PATHS).read_text().splitlines()


def load_test_set(prepared: Path) -> ImageArrays:
    prepared = Path(prepared)
    return (
        np.load(prepared / TEST_IMAGES, allow_pickle=False),
        np.load(prepared / TEST_LABELS, allow_pickle=False),
    )


def load_train_truth(prepared: Path) -> np.ndarray:
    """The true training labels. Only noise injection and evaluation may call this.

    A folder data set has none (see `has_truth`): asking for them is an error that says so.
    """
    path = Path(prepared) / TRAIN_TRUTH
    if not path.exists() and not has_truth(prepared):
        raise ValueError(f"{prepared}: the training truth of a {read_meta(prepared)['dataset']!r} data set is unknown")
    return np.load(path, allow_pickle=False)


def load_train_given_labels(prepared: Path) -> np.ndarray:
    """A folder data set's training labels as listed (already noisy). Only the noise stage reads them."""
    return np.load(Path(prepared) / TRAIN_GIVEN, allow_pickle=False)
