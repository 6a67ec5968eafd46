"""Folder data sets at scale: the prepared store, streamed batches, the reference's transforms, and
bad images, lists and truth lists (each one line naming the file and line; nothing written)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as tvf1

from conftest import tiny_params
from dividemix.config import parse_config
from dividemix.datasets.folder_lists import parse_list
from dividemix.datasets.image_decode import decode_row
from dividemix.datasets.prepared import images_path, read_meta, rows_digest, spec_from_meta
from dividemix.datasets.registry import prepare_dataset
from dividemix.datasets.sources import manifest
from dividemix.datasets.spec import DataSourceError
from dividemix.images.batches import DeviceImages
from dividemix.images.streamed import StreamedImages
from dividemix.images.transforms import center_crop, random_crop, random_resized_crop, resized_crop_boxes

CROP = 8  # data.image_size; the store keeps round(8 * 8 / 7) = 9 (the reference's 256 for 224)


def photo(path, seed: int, size=(13, 10), mode="RGB"):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode == "CMYK":
        image = image.convert("CMYK")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode == "I;16":
        image = Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257)  # Pillow: mode I;16
    image.save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    train = [(f"tr/{i}.png", i % 3) for i in range(12)]
    test = [(f"te/{i}.png", i % 3) for i in range(4)]
    for i, (rel, _) in enumerate(train + test):
        photo(root / rel, i, size=(13 + i % 4, 10 + i % 3))
    for name, entries in (("train", train), ("test", test)):
        (tmp_path / f"{name}.txt").write_text("".join(f"{p} {label}\n" for p, label in entries))
    return tmp_path


def data_config(base, **keys):
    return parse_config(tiny_params(**{
        "data.dataset": "folder", "data.root": str(base / "images"), "data.train_list": str(base / "train.txt"),
        "data.test_list": str(base / "test.txt"), "data.image_size": CROP, "noise.mode": "none", **keys,
    })).data


# ----------------------------------------------------------------------------- the store
def test_the_store_is_the_reference_resize_and_centre_square_written_in_parallel(folder):
    out = folder / "prepared"
    meta = prepare_dataset(data_config(folder, **{"data.workers": 2}), out)
    store = np.load(images_path(out, "train"), mmap_mode="r")
    assert store.shape == (12, 3, 9, 9)
    for i in range(12):  # torchvision's Resize(9) + CenterCrop(9) of the PIL image, as the reference loaders
        with Image.open(folder / "images" / f"tr/{i}.png") as image:
            expected = np.asarray(tvf1.center_crop(tvf1.resize(image.convert("RGB"), 9), [9, 9])).transpose(2, 0, 1)
        np.testing.assert_array_equal(store[i], expected)
    assert meta["images_sha256"]["train"] == rows_digest(store)  # the digest does not depend on worker order
    one = prepare_dataset(data_config(folder, **{"data.workers": 1}), folder / "one")
    assert one["images_sha256"] == meta["images_sha256"] and one["mean"] == meta["mean"]


def test_streamed_batches_equal_in_memory_batches(folder):
    """data.storage disk and memory give the same tensors: plain, and augmented for the same seed."""
    out = folder / "prepared"
    prepare_dataset(data_config(folder), out)
    spec = spec_from_meta(read_meta(out))
    path = images_path(out, "train")
    memory = DeviceImages(np.load(path), spec, torch.device("cpu"))
    streamed = StreamedImages(path, spec, torch.device("cpu"))
    index = torch.tensor([11, 0, 5, 5, 3])
    assert len(streamed) == 12 and streamed.channels == 3
    torch.testing.assert_close(streamed.plain(index), memory.plain(index), rtol=0, atol=0)
    assert streamed.plain(index).shape == (5, 3, CROP, CROP)  # the evaluation crop: the centre 8 of 9
    for crop in ("random", "random_resized"):
        memory.spec = streamed.spec = spec.__class__(**{**spec.__dict__, "train_crop": crop})
        a = memory.augmented(index, torch.Generator().manual_seed(3))
        b = streamed.augmented(index, torch.Generator().manual_seed(3))
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    streamed.close()


# ------------------------------------------------------------------------------ transforms
def test_center_crop_is_torchvisions():
    batch = torch.randint(0, 256, (3, 3, 11, 14), dtype=torch.uint8)
    for size in (8, 9, 11):
        torch.testing.assert_close(center_crop(batch, size), tvf1.center_crop(batch, [size, size]))


def test_random_crop_windows_are_uniform_over_every_position():
    h = w = 6
    batch = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).repeat(4000, 1, 1, 1)
    crops = random_crop(batch, 4, torch.Generator().manual_seed(0))
    corners = crops[:, 0, 0, 0].long()  # the top-left pixel's value names the window's position
    tops, lefts = corners // w, corners % w
    for values in (tops, lefts):  # positions 0..2 both ways, each about a third of the time
        counts = torch.bincount(values, minlength=3)
        assert values.max() == 2 and (counts - 4000 / 3).abs().max() < 150
    expected = batch[0, 0, :4, :4][None] + corners[:, None, None]  # each crop is a whole window
    torch.testing.assert_close(crops[:, 0], expected.float())


def test_random_resized_crop_boxes_follow_torchvisions_rule():
    boxes = resized_crop_boxes(2000, 20, 30, torch.Generator().manual_seed(0))
    top, left, bh, bw = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= 20).all() and (left + bw <= 30).all()
    area = (bh * bw).double() / 600
    assert area.min() >= 0.07 and area.max() <= 1.0 and area.mean() > 0.35  # SCALE (0.08, 1)
    ratio = bw.double() / bh
    assert ratio.min() > 0.6 and ratio.max() < 1.6  # RATIO (3/4, 4/3), rounding allowed
    out = random_resized_crop(torch.rand(5, 3, 20, 30) * 255, 16, torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 16, 16)


# ------------------------------------------------------------------------------- bad input
def refused(base, fragment, **keys):
    with pytest.raises(DataSourceError) as info:
        prepare_dataset(data_config(base, **keys), base / "prepared")
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    assert not (base / "prepared" / "meta.json").exists()  # nothing half-written: no meta, no store
    return message


def test_a_truncated_image_is_refused_with_its_list_line(folder):
    jpeg = folder / "images" / "tr/5.jpg"
    photo(jpeg, 5, size=(40, 30))
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    (folder / "train.txt").write_text((folder / "train.txt").read_text().replace("tr/5.png", "tr/5.jpg"))
    refused(folder, "train.txt:6: cannot read image")


def test_an_unreadable_image_is_refused(folder):
    target = folder / "images" / "tr/2.png"  # a PNG signature and garbage: no decoder can read it
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    refused(folder, "train.txt:3: cannot read image")


def test_a_list_naming_a_file_twice_is_refused(folder):
    with open(folder / "train.txt", "a") as handle:
        handle.write("tr/1.png 2\n")
    refused(folder, "train.txt:13: image 'tr/1.png' listed twice (first at line 2)")


@pytest.mark.parametrize(("mode", "note"), [("CMYK", "CMYK"), ("P", "palette"), ("I;16", "16/32-bit grey")])
def test_unusual_modes_are_decoded_and_noted_in_one_line(folder, capsys, mode, note):
    photo(folder / "images" / "tr/4.png" if mode != "CMYK" else folder / "images" / "tr/4.jpg", 4, mode=mode)
    if mode == "CMYK":  # PNG has no CMYK: a JPEG
        (folder / "train.txt").write_text((folder / "train.txt").read_text().replace("tr/4.png", "tr/4.jpg"))
    prepare_dataset(data_config(folder), folder / "prepared")
    lines = [line for line in capsys.readouterr().out.splitlines() if "note:" in line and "guessed" not in line]
    assert len(lines) == 1 and note in lines[0] and "train.txt:5" in lines[0], lines
    row, _, _ = decode_row(folder / "images" / ("tr/4.jpg" if mode == "CMYK" else "tr/4.png"), 9)
    if mode == "I;16":  # scaled to 8 bits, not clipped to white
        assert 0 < row.mean() < 250
    np.testing.assert_array_equal(np.load(folder / "prepared/train_images.npy")[4], row)


def test_a_truth_list_naming_an_image_outside_the_training_list_is_refused(folder):
    (folder / "verified.txt").write_text("tr/0.png 0\nte/1.png 1\n")
    with pytest.raises(DataSourceError) as info:
        manifest(data_config(folder, **{"data.truth_list": str(folder / "verified.txt")}))
    message = str(info.value)
    assert "\n" not in message and "verified.txt:2: image 'te/1.png' is not in the training list" in message


# ------------------------------------------------------------------------------- manifest
def test_the_manifest_changes_with_an_image_or_a_list_line_and_only_then(folder):
    data = data_config(folder)
    first = manifest(data)
    assert manifest(data) == first and first["images"]["count"] == 16
    image = folder / "images" / "tr/3.png"
    info = image.stat()
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))  # touched
    touched = manifest(data)
    assert touched["images"]["sha256"] != first["images"]["sha256"] and touched["files"] == first["files"]
    text = (folder / "test.txt").read_text()
    (folder / "test.txt").write_text(text.replace("te/0.png 0", "te/0.png 1"))
    test_list = str(folder / "test.txt")
    assert manifest(data)["files"][test_list] != first["files"][test_list]


def test_a_list_is_held_packed_in_order_with_its_lines(tmp_path):
    """The packed paths (no per-image Python object: the decode workers share them) read back exactly."""
    names = [f"d{i % 7}/img {i}.jpg" for i in range(1000)] + ["ünïcode/é.jpg"]
    text = "# header\n" + "".join(f"{name} {i % 5}\n" + ("\n" if i % 100 == 0 else "") for i, name in enumerate(names))
    (tmp_path / "l.txt").write_text(text, encoding="utf-8")
    listing = parse_list(tmp_path / "l.txt")
    assert list(listing.paths) == names and listing.paths[-1] == names[-1] and len(listing) == len(names)
    assert listing[2] == (names[2], f"{tmp_path / 'l.txt'}:5")  # a header and a blank line before it
    np.testing.assert_array_equal(listing.labels, [i % 5 for i in range(len(names))])
    with pytest.raises(IndexError):
        listing.paths[len(names)]
