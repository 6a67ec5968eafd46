"""mini-WebVision as published (WebVision 1.0, Google images) plus the ILSVRC12 val images of the
same classes, read as the official DivideMix loader reads them (`dl_w` =
DivideMix-official/dataloader_webvision.py).

train = info/train_filelist_google.txt ("google/q0001/x.jpg 0", images at data.root/<path>);
test = info/val_filelist.txt ("val000001.jpg 12", images at data.root/val_images_256/<name>);
test2 = the ImageNet val folder of the same classes. Every split keeps the samples whose label is
below K = data.num_classes (null: 50), the official class filter. There is no val split: the
official code has no validation set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dividemix.datasets.folder_lists import ImageList, SourceSet, entry, pack_entries, text_lines
from dividemix.datasets.spec import DataSourceError

if TYPE_CHECKING:
    from dividemix.config import DataConfig

DEFAULT_CLASSES = 50  # the paper's mini-WebVision: the first 50 classes (Train_webvision.py L29)
TRAIN_LIST, VAL_LIST, SYNSETS = "info/train_filelist_google.txt", "info/val_filelist.txt", "info/synsets.txt"
VAL_IMAGES = "val_images_256"  # dl_w L96: root+'val_images_256/'+name
TEST2_NAME = "ImageNet ILSVRC12 val (same classes)"


def webvision_sources(data: "DataConfig") -> SourceSet:
    """train / test (WebVision val) / test2 (ImageNet val), class-filtered, every image checked."""
    root = Path(data.root)
    if not root.is_dir():
        raise DataSourceError(f"data.root: {root} is not a folder")
    for name in (TRAIN_LIST, VAL_LIST):
        if not (root / name).is_file():
            raise DataSourceError(f"{root / name}: WebVision file not found (data.root: the folder holding info/, "
                                  f"google/ and {VAL_IMAGES}/)")
    k = data.num_classes if data.num_classes is not None else DEFAULT_CLASSES
    synsets = _synsets(root / SYNSETS, k)
    train, train_total = _filtered(root / TRAIN_LIST, root, k)  # dl_w L47-56
    test, test_total = _filtered(root / VAL_LIST, root / VAL_IMAGES, k)  # dl_w L35-45
    imagenet = Path(data.imagenet_val) if data.imagenet_val is not None else root / "imagenet" / "val"
    lists = {"train": train, "test": test, "test2": _imagenet(imagenet, k, synsets, root / SYNSETS)}
    setting = f"data.num_classes {k}" if data.num_classes is not None else f"data.num_classes null: {k}"
    note = (f"class filter ({setting}): kept {len(train):,} of {train_total:,} training, {len(test):,} of "
            f"{test_total:,} WebVision val images; labels >= {k} dropped")
    classes = synsets if synsets is not None else tuple(str(c) for c in range(k))
    files = (root / TRAIN_LIST, root / VAL_LIST) + ((root / SYNSETS,) if synsets is not None else ())
    return SourceSet(lists, classes, files, TEST2_NAME, (note,))


def _synsets(synsets_file: Path, k: int) -> tuple[str, ...] | None:
    """Lines 1..k of info/synsets.txt ("n01440764 tench, Tinca tinca": line c+1 names class c), None if absent."""
    if not synsets_file.is_file():
        return None
    names = []
    for number, line in text_lines(synsets_file):
        if number != len(names) + 1:
            raise DataSourceError(f"{synsets_file}:{len(names) + 1}: blank line (line i names class i-1, one per line)")
        names.append(line)
        if len(names) == k:
            return tuple(names)
    raise DataSourceError(f"{synsets_file}: {len(names)} class lines, fewer than the {k} classes kept "
                          "(data.num_classes)")


def _filtered(list_file: Path, image_root: Path, k: int) -> tuple[ImageList, int]:
    """The "path label" lines with label < k (dl_w L43, L54: `if target<num_class`), and the number of
    lines read. Duplicate paths are kept, as the official loader keeps them."""
    counts = [0, 0]  # lines read, lines kept

    def entries() -> Iterator[tuple[str, int, int]]:
        for number, line in text_lines(list_file):
            path, label = entry(list_file, number, line)  # malformed line, negative label: refused
            counts[0] += 1
            if label < k:
                counts[1] += 1
                yield path, label, number
        if counts[0] and not counts[1]:  # an empty list is pack_entries' "no images listed"
            raise DataSourceError(f"{list_file}: none of its {counts[0]:,} images has a label below {k} "
                                  f"(data.num_classes keeps labels 0..{k - 1})")

    listing = pack_entries(entries(), list_file, image_root, empty="no images listed", unique=False)
    return listing, counts[0]


def _imagenet(folder: Path, k: int, synsets: tuple[str, ...] | None, synsets_file: Path) -> ImageList:
    """The ImageNet val images of classes 0..k-1: class-index folders 0/..k-1/ (dl_w L14:
    root+'imagenet/val/'+str(c)) or synset folders n01440764/... named as synsets.txt line c.

    Files in a folder are taken sorted by name (os.listdir's order is the file system's), hidden
    files skipped; source = the folder, line = position 1..n, paths relative to the folder.
    """
    if not folder.is_dir():
        raise DataSourceError(f"{folder}: ImageNet val folder not found (data.imagenet_val; null: "
                              "data.root/imagenet/val)")
    if (folder / "0").is_dir():
        names = [str(c) for c in range(k)]
    elif synsets is None:
        raise DataSourceError(f"{folder}: no class-index folder 0/, and synset folders (n01440764/...) need "
                              f"{synsets_file} to map them to classes: not found")
    else:
        names = [line.split()[0] for line in synsets]

    def entries() -> Iterator[tuple[str, int, int]]:
        position = 0
        for c, name in enumerate(names):
            class_dir = folder / name
            if not class_dir.is_dir():  # the official loader would crash in os.listdir
                raise DataSourceError(f"{class_dir}: class {c}'s ImageNet val folder not found (folders 0..{k - 1}, "
                                      f"or synset folders named as in {synsets_file.name})")
            images = sorted(item.name for item in os.scandir(class_dir)
                            if item.is_file() and not item.name.startswith("."))
            if not images:
                raise DataSourceError(f"{class_dir}: class {c}'s ImageNet val folder holds no image")
            for image in images:
                position += 1
                yield f"{name}/{image}", c, position

    return pack_entries(entries(), folder, folder, empty="no images", unique=False)
