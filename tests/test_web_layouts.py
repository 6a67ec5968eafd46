"""The published Clothing1M and mini-WebVision (+ ILSVRC12 val) layouts, read as the official loaders
read them (datasets/clothing1m.py, webvision.py).

Tiny trees with the real file names and line formats (shared/reference/web-datasets.md), a few
dozen 6x5 JPEGs; each split is compared with its files line for line, and every refusal must be
one line naming the file (and line) at fault.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dividemix.config import DataConfig
from dividemix.datasets.clothing1m import clothing1m_sources
from dividemix.datasets.spec import DataSourceError
from dividemix.datasets.webvision import TEST2_NAME, webvision_sources


@functools.cache
def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 5), (200, 30, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg())


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def refused(call, *fragments: str) -> str:
    """The one-line DataSourceError of `call()`, which must contain every fragment."""
    with pytest.raises(DataSourceError) as excinfo:
        call()
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- Clothing1M -------------------------------------------------------------------------------


def key(i: int) -> str:
    return f"images/{i % 10}/{i * 7 % 100:02d}/{1400000000 + 7919 * i},{2000000000 + 104729 * i}.jpg"


# the first lines of the real clean_val / clean_test lists, then made-up keys of the same shape
C_TRAIN = [(key(i), (3 * i + 1) % 14) for i in range(12)] + [("images/2/26/3761328114,905362226.jpg", 13)]
C_VAL = [("images/0/00/1429296456,2096860000.jpg", 7)] + [(key(i), (5 * i) % 14) for i in range(20, 25)]
C_TEST = [("images/0/00/1278541879,867148000.jpg", 0)] + [(key(i), (2 * i + 3) % 14) for i in range(30, 34)]
C_CLEAN_TRAIN = [(key(i), i % 14) for i in range(40, 43)]  # clean_train_key_list: not read by DivideMix
NAMES = ["T-shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker", "Jacket", "Down Coat",
         "Suit", "Shawl", "Dress", "Vest", "Underwear"]
C_FILES = ("noisy_label_kv.txt", "clean_label_kv.txt", "noisy_train_key_list.txt", "clean_val_key_list.txt",
           "clean_test_key_list.txt")


def clothing_tree(base: Path, place: str = ".", images_root: bool = False, names: bool = True) -> tuple[Path, Path]:
    """(data.root, folder of the text files): the Clothing1M folder, or its images/ folder holding the
    text files (the official loader's), the text files at that root or under annotations/."""
    folder = base / "clothing1M"
    for k, _ in C_TRAIN + C_VAL + C_TEST:
        write_image(folder / k)
    root = folder / "images" if images_root else folder
    text = root / place
    # kv files in another order than the key lists, with keys no list reads (double-labelled, clean train)
    double = [(k, (label + 1) % 14) for k, label in C_VAL[:2]]
    write_lines(text / "noisy_label_kv.txt", [f"{k} {label}" for k, label in (C_TRAIN + double)[::-1]])
    clean = C_TEST + C_CLEAN_TRAIN + C_VAL
    write_lines(text / "clean_label_kv.txt", [f"{k} {label}" for k, label in clean[1::2] + clean[::2]])
    for name, rows in (("noisy_train", C_TRAIN), ("clean_val", C_VAL), ("clean_test", C_TEST),
                       ("clean_train", C_CLEAN_TRAIN)):
        write_lines(text / f"{name}_key_list.txt", [k for k, _ in rows])
    if names:
        write_lines(text / "category_names_eng.txt", NAMES + [""])  # a trailing blank line is no class
    return root, text


def clothing(root: Path):
    return clothing1m_sources(DataConfig(dataset="clothing1m", root=str(root)))


@pytest.mark.parametrize("place", [".", "annotations"])
@pytest.mark.parametrize("images_root", [False, True], ids=["dataset-root", "images-root"])
def test_clothing_splits_match_the_files(tmp_path, place, images_root):
    root, text = clothing_tree(tmp_path, place, images_root)
    sources = clothing(root)
    assert set(sources.lists) == {"train", "val", "test"}
    for split, rows, key_list in (("train", C_TRAIN, "noisy_train"), ("val", C_VAL, "clean_val"),
                                  ("test", C_TEST, "clean_test")):
        listing = sources.lists[split]
        assert listing.source == text / f"{key_list}_key_list.txt"
        assert listing.root == root
        # as written under the Clothing1M folder; without "images/" under the images folder (dl_c key[7:])
        assert list(listing.paths) == [k[7:] if images_root else k for k, _ in rows]
        assert listing.labels.dtype == np.int64 and listing.lines.dtype == np.int64
        np.testing.assert_array_equal(listing.labels, [label for _, label in rows])
        np.testing.assert_array_equal(listing.lines, np.arange(1, len(rows) + 1))
        assert all(os.path.isfile(root / path) for path in listing.paths)
    assert sources.classes == tuple(NAMES)
    assert sources.files == tuple(text / name for name in C_FILES) + (text / "category_names_eng.txt",)
    assert sources.test2_name is None and sources.notes == ()


def test_clothing_root_text_files_win_over_annotations(tmp_path):
    root, _ = clothing_tree(tmp_path, ".")
    (root / "annotations").mkdir()
    write_lines(root / "annotations" / "noisy_label_kv.txt", ["garbage"])
    assert clothing(root).lists["train"].source == root / "noisy_train_key_list.txt"


def test_clothing_blank_lines_keep_line_numbers_and_names_default(tmp_path):
    root, text = clothing_tree(tmp_path, names=False)
    keys = [k for k, _ in C_TEST]
    write_lines(text / "clean_test_key_list.txt", keys[:2] + [""] + keys[2:] + [""])
    sources = clothing(root)
    np.testing.assert_array_equal(sources.lists["test"].lines, [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(sources.lists["test"].labels, [label for _, label in C_TEST])
    assert sources.classes == tuple(str(c) for c in range(14))
    assert sources.notes == ("class names: category_names_eng.txt not found; classes named 0..13",)
    assert text / "category_names_eng.txt" not in sources.files


def test_clothing_a_key_repeated_with_its_label_is_read_once_and_said(tmp_path):
    """The official loader reads a kv file into a dict (dl_c L24): a key repeated with the same label
    changes nothing there, so it is accepted here too, but said in a note, never silently."""
    root, text = clothing_tree(tmp_path)
    lines = (text / "noisy_label_kv.txt").read_text().splitlines()
    write_lines(text / "noisy_label_kv.txt", lines[:3] + [lines[1], lines[2]] + lines[3:])
    sources = clothing(root)
    np.testing.assert_array_equal(sources.lists["train"].labels, [label for _, label in C_TRAIN])
    assert sources.notes == (("noisy_label_kv.txt: 2 line(s) repeat an earlier key with the same label (first at "
                              "line 4); each key read once, as the official loader does"),)


def _edit(text: Path, name: str, lines: list[str]) -> None:
    write_lines(text / name, lines)


TRAIN_KV = [f"{k} {label}" for k, label in C_TRAIN]
CLEAN_KV = [f"{k} {label}" for k, label in C_TEST + C_VAL]
UNLABELLED = "images/9/99/1111111111,2222222222.jpg"


@pytest.mark.parametrize(("name", "lines", "fragments"), [
    ("noisy_label_kv.txt", TRAIN_KV[:1] + ["images/0/07/1,2.jpg seven"] + TRAIN_KV[1:],
     ["noisy_label_kv.txt:2: malformed line", "integer label"]),
    ("clean_label_kv.txt", [C_TEST[0][0]] + CLEAN_KV, ["clean_label_kv.txt:1: malformed line"]),
    ("noisy_label_kv.txt", TRAIN_KV[:2] + [f"{C_TRAIN[2][0]} 14"] + TRAIN_KV[3:],
     ["noisy_label_kv.txt:3: label 14 out of range [0, 14)"]),
    ("clean_label_kv.txt", CLEAN_KV[:3] + [f"{C_TEST[0][0]} -1"], ["clean_label_kv.txt:4: label -1 out of range"]),
    ("clean_label_kv.txt", CLEAN_KV + [f"{C_TEST[1][0]} {(C_TEST[1][1] + 1) % 14}"],
     [f"clean_label_kv.txt:{len(CLEAN_KV) + 1}: key {C_TEST[1][0]} labelled"]),
    ("clean_val_key_list.txt", [k for k, _ in C_VAL[:2]] + [UNLABELLED],
     [f"clean_val_key_list.txt:3: key {UNLABELLED} has no label in ", "clean_label_kv.txt"]),
    ("clean_test_key_list.txt", [k for k, _ in C_TEST] + [C_TEST[1][0]],
     [f"clean_test_key_list.txt:{len(C_TEST) + 1}: image ", "listed twice (first at line 2)"]),
    ("clean_val_key_list.txt", [C_VAL[0][0], "images/0/../../x.jpg"],
     ["clean_val_key_list.txt:2: key images/0/../../x.jpg must be a relative path without '..'"]),
    ("clean_val_key_list.txt", [], ["clean_val_key_list.txt: no images listed"]),
    ("noisy_train_key_list.txt", [""], ["noisy_train_key_list.txt: no images listed"]),
    ("category_names_eng.txt", NAMES[:13], ["category_names_eng.txt: 13 lines, want 14"]),
])
def test_clothing_refusals_are_one_line(tmp_path, name, lines, fragments):
    root, text = clothing_tree(tmp_path, "annotations")
    _edit(text, name, lines)
    refused(lambda: clothing(root), str(text), *fragments)


def test_clothing_missing_file_names_the_places_looked(tmp_path):
    root, text = clothing_tree(tmp_path, "annotations")
    (text / "clean_test_key_list.txt").unlink()
    refused(lambda: clothing(root), f"{text / 'clean_test_key_list.txt'}: Clothing1M file not found",
            f"first of {root}, {root / 'annotations'} that holds noisy_label_kv.txt")
    for name in C_FILES:
        (text / name).unlink(missing_ok=True)
    refused(lambda: clothing(root), f"{root / 'noisy_label_kv.txt'}: Clothing1M file not found (looked in {root} and "
            f"{root / 'annotations'})")


def test_clothing_missing_image_and_unresolvable_keys(tmp_path):
    root, text = clothing_tree(tmp_path)
    (root / C_TRAIN[3][0]).unlink()
    refused(lambda: clothing(root), f"{text / 'noisy_train_key_list.txt'}:4: image ", "not found")
    other = tmp_path / "elsewhere"
    shutil.copytree(text, other, ignore=shutil.ignore_patterns("images"))  # the text files, no image
    refused(lambda: clothing(other), f"{other / 'noisy_train_key_list.txt'}:1: image {C_TRAIN[0][0]} is neither")


def test_clothing_images_root_needs_the_images_prefix(tmp_path):
    root, text = clothing_tree(tmp_path, images_root=True)
    keys = [k for k, _ in C_VAL]
    write_lines(text / "noisy_label_kv.txt", TRAIN_KV + [f"{k[7:]} 1" for k in keys])
    write_lines(text / "noisy_train_key_list.txt", [k for k, _ in C_TRAIN] + [keys[0][7:]])
    refused(lambda: clothing(root), f"noisy_train_key_list.txt:{len(C_TRAIN) + 1}: key {keys[0][7:]} does not start")


# --- WebVision --------------------------------------------------------------------------------

SYNSETS = ["n01440764 tench, Tinca tinca", "n01443537 goldfish, Carassius auratus",
           "n01484850 great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias",
           "n01491361 tiger shark, Galeocerdo cuvieri", "n01494475 hammerhead, hammerhead shark",
           "n01496331 electric ray, crampfish, numbfish, torpedo"]
W_TRAIN = [(f"google/q{i % 6 + 1:04d}/{0x5f3759df * (i + 1) % 16 ** 10:010x}.jpg", i % 6) for i in range(18)]
W_VAL = [(f"val{i:06d}.jpg", i * 5 % 6) for i in range(1, 13)]
IMAGENET = {c: [f"ILSVRC2012_val_{(c + 1) * 4099 % 50000:08d}.JPEG", f"ILSVRC2012_val_{(c + 1) * 293:08d}.JPEG"]
            for c in range(6)}


def webvision_tree(base: Path, synsets: bool = True) -> Path:
    """data.root of mini-WebVision: info/, google/, val_images_256/ and imagenet/val/0..5/."""
    root = base / "webvision"
    write_lines(root / "info" / "train_filelist_google.txt", [f"{path} {label}" for path, label in W_TRAIN])
    write_lines(root / "info" / "val_filelist.txt", [f"{name} {label}" for name, label in W_VAL])
    if synsets:
        write_lines(root / "info" / "synsets.txt", SYNSETS)
    for path, _ in W_TRAIN:
        write_image(root / path)
    for name, _ in W_VAL:
        write_image(root / "val_images_256" / name)
    for c, names in IMAGENET.items():
        for name in names:
            write_image(root / "imagenet" / "val" / str(c) / name)
    return root


def webvision(root: Path, num_classes: int | None = None, imagenet_val: Path | None = None):
    return webvision_sources(DataConfig(dataset="webvision", root=str(root), num_classes=num_classes,
                                        imagenet_val=None if imagenet_val is None else str(imagenet_val)))


def kept(rows: list[tuple[str, int]], k: int) -> tuple[list[str], list[int], list[int]]:
    """(paths, labels, line numbers) of the rows the official filter keeps (label < k)."""
    picked = [(path, label, line) for line, (path, label) in enumerate(rows, start=1) if label < k]
    return [p for p, _, _ in picked], [label for _, label, _ in picked], [line for _, _, line in picked]


@pytest.mark.parametrize("k", [3, 5])
def test_webvision_class_filter(tmp_path, k):
    root = webvision_tree(tmp_path)
    (root / W_TRAIN[5][0]).unlink()  # label 5: dropped by the filter, so never looked for
    sources = webvision(root, num_classes=k)
    assert set(sources.lists) == {"train", "test", "test2"}
    for split, rows, source, image_root in (
            ("train", W_TRAIN, root / "info" / "train_filelist_google.txt", root),
            ("test", W_VAL, root / "info" / "val_filelist.txt", root / "val_images_256")):
        listing, (paths, labels, lines) = sources.lists[split], kept(rows, k)
        assert (listing.source, listing.root) == (source, image_root)
        assert list(listing.paths) == paths
        np.testing.assert_array_equal(listing.labels, labels)
        np.testing.assert_array_equal(listing.lines, lines)
    assert len(sources.lists["train"]) == 3 * k and len(sources.lists["test"]) == 2 * k
    assert sources.notes == (f"class filter (data.num_classes {k}): kept {3 * k} of 18 training, {2 * k} of 12 "
                             f"WebVision val images; labels >= {k} dropped",)
    test2 = sources.lists["test2"]
    assert (test2.source, test2.root) == (root / "imagenet" / "val", root / "imagenet" / "val")
    assert list(test2.paths) == [f"{c}/{name}" for c in range(k) for name in sorted(IMAGENET[c])]
    np.testing.assert_array_equal(test2.labels, np.repeat(np.arange(k), 2))
    np.testing.assert_array_equal(test2.lines, np.arange(1, 2 * k + 1))
    assert sources.classes == tuple(SYNSETS[:k]) and sources.test2_name == TEST2_NAME
    assert sources.files == (root / "info" / "train_filelist_google.txt", root / "info" / "val_filelist.txt",
                             root / "info" / "synsets.txt")


def test_webvision_default_is_fifty_classes(tmp_path):
    root = webvision_tree(tmp_path, synsets=False)
    for c in range(6, 50):
        write_image(root / "imagenet" / "val" / str(c) / f"ILSVRC2012_val_{c + 1:08d}.JPEG")
    # thousands separators: 1,500 more lines of a dropped class (duplicates kept, as the official loader)
    write_lines(root / "info" / "train_filelist_google.txt",
                [f"{path} {label}" for path, label in W_TRAIN] + ["google/q0051/x.jpg 50"] * 1500)
    sources = webvision(root)
    np.testing.assert_array_equal(sources.lists["train"].labels, [label for _, label in W_TRAIN])
    np.testing.assert_array_equal(sources.lists["test"].labels, [label for _, label in W_VAL])
    np.testing.assert_array_equal(sources.lists["test2"].labels, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5] + list(range(6, 50)))
    assert sources.classes == tuple(str(c) for c in range(50))
    assert sources.notes == ("class filter (data.num_classes null: 50): kept 18 of 1,518 training, 12 of 12 "
                             "WebVision val images; labels >= 50 dropped",)
    assert sources.files == (root / "info" / "train_filelist_google.txt", root / "info" / "val_filelist.txt")


def test_imagenet_synset_folders_give_the_same_labels(tmp_path):
    root = webvision_tree(tmp_path)
    by_wnid = tmp_path / "ILSVRC2012_val"
    for c, names in IMAGENET.items():
        for name in names:
            write_image(by_wnid / SYNSETS[c].split()[0] / name)
    write_image(by_wnid / "n09999999" / "ILSVRC2012_val_00000001.JPEG")  # another class: not read
    by_index = webvision(root, num_classes=4).lists["test2"]
    by_synset = webvision(root, num_classes=4, imagenet_val=by_wnid).lists["test2"]
    np.testing.assert_array_equal(by_synset.labels, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(by_synset.labels, by_index.labels)
    assert list(by_synset.paths) == [f"{SYNSETS[c].split()[0]}/{name}" for c in range(4) for name in sorted(IMAGENET[c])]
    assert [p.split("/")[1] for p in by_synset.paths] == [p.split("/")[1] for p in by_index.paths]
    assert by_synset.root == by_wnid
    (root / "info" / "synsets.txt").unlink()
    refused(lambda: webvision(root, num_classes=4, imagenet_val=by_wnid), str(by_wnid), "synsets.txt",
            "not found")
    shutil.rmtree(by_wnid / SYNSETS[2].split()[0])
    write_lines(root / "info" / "synsets.txt", SYNSETS)
    refused(lambda: webvision(root, num_classes=4, imagenet_val=by_wnid),
            f"{by_wnid / 'n01484850'}: class 2's ImageNet val folder not found")


TRAIN_LINES = [f"{path} {label}" for path, label in W_TRAIN]


@pytest.mark.parametrize(("name", "lines", "fragments"), [
    ("train_filelist_google.txt", TRAIN_LINES[:3] + ["google/q0001/abc.jpg"] + TRAIN_LINES[3:],
     ["train_filelist_google.txt:4: malformed line"]),
    ("train_filelist_google.txt", TRAIN_LINES[:3] + ["google/q0001/abc.jpg two"], ["train_filelist_google.txt:4: malformed"]),
    ("val_filelist.txt", ["val000001.jpg 1", "val000002.jpg -2"], ["val_filelist.txt:2: label -2 is negative"]),
    ("val_filelist.txt", ["val000001.jpg 3", "val000002.jpg 4"], ["val_filelist.txt: none of its 2 images has a label below 3"]),
    ("val_filelist.txt", [], ["val_filelist.txt: no images listed"]),
    ("synsets.txt", SYNSETS[:2], ["synsets.txt: 2 class lines, fewer than the 3 classes kept"]),
    ("synsets.txt", SYNSETS[:1] + [""] + SYNSETS[1:], ["synsets.txt:2: blank line"]),
])
def test_webvision_refusals_are_one_line(tmp_path, name, lines, fragments):
    root = webvision_tree(tmp_path)
    write_lines(root / "info" / name, lines)
    refused(lambda: webvision(root, num_classes=3), str(root / "info"), *fragments)


def test_webvision_missing_files_and_folders(tmp_path):
    root = webvision_tree(tmp_path)
    assert [label for _, label in W_VAL[:2]] == [5, 4]
    (root / "val_images_256" / W_VAL[0][0]).unlink()  # label 5: dropped at k=5, never looked for
    (root / "val_images_256" / W_VAL[1][0]).unlink()  # label 4: kept
    refused(lambda: webvision(root, num_classes=5), f"{root / 'info' / 'val_filelist.txt'}:2: image ", "not found")
    shutil.rmtree(root / "imagenet" / "val" / "2")
    refused(lambda: webvision(root, num_classes=3), f"{root / 'imagenet' / 'val' / '2'}: class 2's ImageNet val folder")
    refused(lambda: webvision(root, num_classes=3, imagenet_val=tmp_path / "none"), f"{tmp_path / 'none'}: ImageNet val")
    (root / "info" / "train_filelist_google.txt").unlink()
    refused(lambda: webvision(root, num_classes=3), f"{root / 'info' / 'train_filelist_google.txt'}: WebVision file not found")
