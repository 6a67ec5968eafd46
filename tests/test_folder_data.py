"""Your own data (data.dataset: folder): images on disk plus list files, as Clothing1M.

Tiny PNGs written by the tests; the training labels are the given (noisy) ones, so there is no
training truth; the noise stage keeps them (none), replaces them (file) or flips a share of them (sym).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from torchvision.transforms import functional as tvf1

from conftest import dvc_stage_args, run_stage_script, tiny_params, write_params
from dividemix.config import ConfigError, parse_config
from dividemix.datasets.prepared import (
    TRAIN_GIVEN,
    TRAIN_TRUTH,
    has_truth,
    load_test_set,
    load_train_given_labels,
    load_train_images,
    load_train_truth,
    load_val_set,
    read_meta,
    spec_from_meta,
)
from dividemix.datasets.registry import prepare_dataset
from dividemix.datasets.spec import DatasetSpec, DataSourceError
from dividemix.noise.inject import noisy_label_file

SIZE = 8
TRAIN = [("a/0.png", 0), ("a/1.png", 1), ("b/2 with space.png", 2), ("b/3.png", 0), ("c/4.png", 1), ("c/5.png", 2)]
VAL = [("v/0.png", 1), ("v/1.png", 2), ("v/2.png", 0)]
TEST = [("t/0.png", 2), ("t/1.png", 0), ("t/2.png", 1)]


def write_image(path: Path, seed: int) -> np.ndarray:
    """A random RGB image of an odd size (HWC uint8), saved as PNG; every 4th one grayscale."""
    rng = np.random.default_rng(seed)
    h, w = 9 + seed % 5, 11 + seed % 3
    path.parent.mkdir(parents=True, exist_ok=True)
    if seed % 4 == 3:
        gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
        Image.fromarray(gray, mode="L").save(path)
        return np.repeat(gray[:, :, None], 3, axis=2)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


STORED = 9  # the stored side for crops of SIZE: round(8 * 256 / 224), the reference's Resize(256) for 224


def expected(rgb: np.ndarray) -> np.ndarray:
    """torchvision's Resize(short side) + CenterCrop on the PIL image: what the reference loaders see."""
    image = tvf1.center_crop(tvf1.resize(Image.fromarray(rgb), STORED), [STORED, STORED])
    return np.asarray(image).transpose(2, 0, 1)


def write_list(path: Path, entries) -> Path:
    path.write_text("".join(f"{p} {label}\n" for p, label in entries))
    return path


@pytest.fixture
def folder(tmp_path):
    """root/ with the images, lists/ with the three list files; returns (tmp_path, decoded images)."""
    root = tmp_path / "images"
    pixels = {}
    for seed, (rel, _) in enumerate(TRAIN + VAL + TEST):
        pixels[rel] = write_image(root / rel, seed)
    (tmp_path / "lists").mkdir()
    write_list(tmp_path / "lists" / "train.txt", TRAIN)
    (tmp_path / "lists" / "val.txt").write_text("# clean validation\n\n" + "".join(f"{p} {l}\n" for p, l in VAL))
    write_list(tmp_path / "lists" / "test.txt", TEST)
    return tmp_path, pixels


def config(base: Path, **overrides):
    keys = {
        "data.dataset": "folder", "data.root": str(base / "images"), "data.train_list": str(base / "lists" / "train.txt"),
        "data.val_list": str(base / "lists" / "val.txt"), "data.test_list": str(base / "lists" / "test.txt"),
        "data.image_size": SIZE, "noise.mode": "none",
    }
    keys.update(overrides)
    return parse_config(tiny_params(**keys))


# ------------------------------------------------------------------------------------- prepare
def test_folder_prepares_resized_uint8_arrays_without_truth(folder):
    base, pixels = folder
    out = base / "prepared"
    meta = prepare_dataset(config(base).data, out)

    train = load_train_images(out)
    assert train.shape == (6, 3, STORED, STORED) and train.dtype == np.uint8
    for i, (rel, _) in enumerate(TRAIN):
        np.testing.assert_array_equal(train[i], expected(pixels[rel]))
    np.testing.assert_array_equal(load_train_given_labels(out), [label for _, label in TRAIN])
    assert not (out / TRAIN_TRUTH).exists() and (out / TRAIN_GIVEN).exists()
    test_x, test_y = load_test_set(out)
    np.testing.assert_array_equal(test_x[1], expected(pixels["t/1.png"]))
    np.testing.assert_array_equal(test_y, [2, 0, 1])
    val_x, val_y = load_val_set(out)
    assert val_x.shape == (3, 3, STORED, STORED)
    np.testing.assert_array_equal(val_y, [1, 2, 0])

    assert meta == read_meta(out, dataset="folder")
    assert (meta["has_truth"], meta["has_val"], meta["n_train"], meta["n_val"], meta["n_test"]) == (False, True, 6, 3, 3)
    assert meta["num_classes"] == 3 and meta["classes"] == ["0", "1", "2"]
    assert meta["image_shape"] == [3, STORED, STORED] and meta["pixel_scale"] == 255.0
    assert (meta["image_size"], meta["resize"], meta["crop_size"], meta["train_crop"]) == (SIZE, STORED, SIZE, "random")
    pixels_01 = train.astype(np.float64) / 255
    np.testing.assert_allclose(meta["mean"], pixels_01.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(meta["std"], pixels_01.std(axis=(0, 2, 3)), atol=1e-6)
    assert has_truth(out) is False
    with pytest.raises(ValueError, match="truth of a 'folder' data set is unknown"):
        load_train_truth(out)


def test_the_spec_comes_from_meta_with_its_classes_and_statistics(folder):
    base, _ = folder
    meta = prepare_dataset(config(base).data, base / "prepared")
    spec = spec_from_meta(read_meta(base / "prepared", dataset="folder"))
    assert isinstance(spec, DatasetSpec)
    assert (spec.num_classes, spec.classes) == (3, ("0", "1", "2"))
    assert spec.mean == tuple(meta["mean"]) and spec.std == tuple(meta["std"])
    assert spec.pixel_scale == 255.0 and spec.hflip and spec.crop_padding == 0 and spec.asym_map is None
    assert (spec.crop_size, spec.train_crop) == (SIZE, "random")  # random crops of SIZE from the stored side
    with pytest.raises(ValueError, match="prepared data set is 'folder' but data.dataset is 'cifar10'"):
        read_meta(base / "prepared", dataset="cifar10")


def test_classes_file_names_the_classes(folder):
    base, _ = folder
    (base / "images" / "classes.txt").write_text("cat\ndog\nbird\nfish\n")
    meta = prepare_dataset(config(base, **{"data.val_list": None}).data, base / "prepared")
    assert meta["classes"] == ["cat", "dog", "bird", "fish"] and meta["num_classes"] == 4
    assert meta["has_val"] is False and load_val_set(base / "prepared") is None
    assert np.load(base / "prepared" / "val_images.npy").shape == (0, 3, STORED, STORED)  # always there, empty


# -------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("list_text", "fragment"),
    [
        ("a/0.png 0\nmissing.png 1\n", "train.txt:2: image"),
        ("a/0.png 0\na/1.png\n", "train.txt:2: malformed line"),
        ("a/0.png 0\n\na/1.png one\n", "train.txt:3: malformed line"),
        ("a/0.png -1\n", "train.txt:1: label -1 is negative"),
        ("../images/a/0.png 0\n", "train.txt:1: image path '../images/a/0.png' must be relative"),
        ("a/0.png 0\nbroken.png 1\n", "train.txt:2: cannot read image"),
        ("# nothing\n", "train.txt: no images listed"),
    ],
)
def test_bad_train_lists_are_one_line_errors_with_file_and_line(folder, list_text, fragment):
    base, _ = folder
    (base / "images" / "broken.png").write_text("not a png")
    (base / "lists" / "train.txt").write_text(list_text)
    with pytest.raises(DataSourceError) as info:
        prepare_dataset(config(base).data, base / "prepared")
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


def test_label_out_of_range_of_the_classes_file(folder):
    base, _ = folder
    (base / "images" / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(DataSourceError) as info:
        prepare_dataset(config(base).data, base / "prepared")
    assert "train.txt:3: label 2 out of range [0, 2)" in str(info.value)


def test_missing_list_file(folder):
    base, _ = folder
    with pytest.raises(DataSourceError, match="nope.txt: list file not found"):
        prepare_dataset(config(base, **{"data.test_list": str(base / "nope.txt")}).data, base / "prepared")


@pytest.mark.parametrize(
    ("keys", "named", "fragment"),
    [
        ({"data.root": None}, "data.root", "required when data.dataset is 'folder'"),
        ({"data.train_list": None}, "data.train_list", "required"),
        ({"data.test_list": None}, "data.test_list", "required"),
        ({"data.image_size": None}, "data.image_size", "required"),
        ({"noise.mode": "asym"}, "noise.mode", "allowed: none, sym, sym_true, file"),  # no class map
        ({"data.resize": 6}, "data.resize", "resize >= image_size"),
        ({"data.mean": [0.5, 0.5, 0.5]}, "data.mean", "go together"),
        ({"data.mean": [0.5, 0.5], "data.std": [0.2, 0.2]}, "data.mean", "3"),
        ({"data.train_crop": "squash"}, "data.train_crop", "random"),
        ({"data.storage": "cloud"}, "data.storage", "memory"),
    ],
)
def test_folder_config_errors(tmp_path, keys, named, fragment):
    """Each refused with one line naming the key and what is allowed."""
    with pytest.raises(ConfigError) as info:
        config(tmp_path, **keys)
    message = str(info.value)
    assert "\n" not in message and named in message and fragment in message, message


# ---------------------------------------------------------------------------------- noise stage
def test_noise_mode_none_keeps_the_given_labels_and_reports_no_rate(folder):
    base, _ = folder
    prepare_dataset(config(base).data, base / "prepared")
    out = base / "noisy.parquet"
    summary = noisy_label_file(dataset="folder", prepared=base / "prepared", out=out, mode="none", rate=0.5, seed=1)
    np.testing.assert_array_equal(pq.read_table(out).column("noisy_label").to_numpy(), [label for _, label in TRAIN])
    assert summary["n_train"] == 6 and summary["n_wrong"] is None and summary["noise_rate_actual"] is None
    json.dumps(summary)
    with pytest.raises(ValueError, match="allowed: none, sym, sym_true, file"):
        noisy_label_file(dataset="folder", prepared=base / "prepared", out=out, mode="asym", rate=0.5, seed=1)


def test_symmetric_noise_is_injected_on_the_given_labels(folder):
    """A user's folder with labels they trust: sym noise flips a share of the listed labels (for studies)."""
    base, _ = folder
    prepare_dataset(config(base).data, base / "prepared")
    out = base / "noisy.parquet"
    summary = noisy_label_file(dataset="folder", prepared=base / "prepared", out=out, mode="sym_true", rate=0.5, seed=1)
    noisy = pq.read_table(out).column("noisy_label").to_numpy()
    given = np.array([label for _, label in TRAIN])
    assert (noisy != given).sum() == 3 and summary["n_train"] == 6  # exactly half changed, to other classes


def test_noise_mode_file_replaces_the_given_labels(folder):
    base, _ = folder
    prepare_dataset(config(base).data, base / "prepared")
    labels = np.array([2, 2, 1, 1, 0, 0])
    pd.DataFrame({"sample_index": np.arange(6), "label": labels}).to_parquet(base / "l.parquet")
    summary = noisy_label_file(dataset="folder", prepared=base / "prepared", out=base / "n.parquet", mode="file",
                               rate=0.5, seed=1, file=base / "l.parquet")
    np.testing.assert_array_equal(pq.read_table(base / "n.parquet").column("noisy_label").to_numpy(), labels)
    assert summary["n_wrong"] is None


def test_download_stage_for_a_folder(folder):
    """The stage script: a good run, then a bad list (exit 2, one line with file and line, old output kept)."""
    base, _ = folder
    params = tiny_params(**{
        "data.dataset": "folder", "data.root": "images", "data.train_list": "lists/train.txt",
        "data.val_list": "lists/val.txt", "data.test_list": "lists/test.txt", "data.image_size": SIZE, "noise.mode": "none",
    })
    write_params(base / "params.yaml", params)
    run_stage_script("check", dvc_stage_args("check"), cwd=base)  # the sources' manifest download checks
    result = run_stage_script("download", dvc_stage_args("download"), cwd=base)
    assert "folder: 6 train / 3 val / 3 test images" in result.stdout
    before = (base / "data" / "prepared" / "meta.json").read_bytes()

    (base / "lists" / "test.txt").write_text("t/0.png 2\nt/9.png 1\n")
    for stage in ("check", "download"):  # each refuses it alone (download's manifest is now stale)
        result = run_stage_script(stage, dvc_stage_args(stage), cwd=base, check=False)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "lists/test.txt:2: image images/t/9.png not found" in lines[0], (stage, lines)
    assert (base / "data" / "prepared" / "meta.json").read_bytes() == before
