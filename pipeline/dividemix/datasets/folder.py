"""Your own images, in the layout of Clothing1M: `data.root` plus list files, at any size.

A list file has one "relative/path.jpg label" line per image (`folder_lists`); the training
list's labels are the *given* (possibly noisy) labels: there is no training truth. `download`
decodes every listed image once, in parallel, into the prepared store (`image_store`): the short
side resized to data.resize and the centre square kept (`image_decode`), the reference's
Resize(256) before its crops. Training streams batches from that store and crops on the device
(`images.streamed`); nothing holds all images in memory.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dividemix.datasets.folder_lists import ImageList, class_names, read_image_list
from dividemix.datasets.image_store import RateLine, StoreSummary, write_store
from dividemix.datasets.prepared import SPLIT_IMAGES, TRAIN_PATHS, finish_prepared
from dividemix.datasets.spec import DatasetSpec, DataSourceError
from dividemix.files.atomic import file_digest, write_atomic

if TYPE_CHECKING:
    from dividemix.config import DataConfig


def stored_side(data: "DataConfig") -> int:
    """data.resize, or the reference's ratio 256 / 224 applied to data.image_size."""
    return data.resize if data.resize is not None else int(round(data.image_size * 8 / 7))


def read_lists(data: "DataConfig") -> dict[str, ImageList]:
    """The train, test and (optional) val lists, every listed image checked to exist."""
    if data is None or None in (data.root, data.train_list, data.test_list, data.image_size):
        raise DataSourceError("data.dataset 'folder' needs data.root, data.train_list, data.test_list and data.image_size")
    root = Path(data.root)
    if not root.is_dir():
        raise DataSourceError(f"{root}: data.root is not a folder")
    lists = {"train": read_image_list(data.train_list, root), "test": read_image_list(data.test_list, root)}
    if data.val_list is not None:
        lists["val"] = read_image_list(data.val_list, root)
    return lists


@dataclass(frozen=True)
class FolderSpec(DatasetSpec):
    """Your own images in the layout of Clothing1M: data.root plus list files.

    The registry's entry knows nothing of the classes or statistics: `prepare` measures them and
    writes them into meta.json, where training reads them (`prepared.spec_from_meta`).
    """

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        lists = read_lists(data)
        dest.mkdir(parents=True, exist_ok=True)
        classes = class_names(Path(data.root), lists)
        side = stored_side(data)
        workers = data.workers or os.cpu_count() or 1
        # Every split's file exists (dvc.yaml lists them), the val store empty without a val list.
        summaries = {split: self._store(dest / SPLIT_IMAGES[split], Path(data.root), lists.get(split), side, workers)
                     for split in ("train", "val", "test")}
        mean, std = (tuple(data.mean), tuple(data.std)) if data.mean is not None else summaries["train"].mean_std()
        spec = dataclasses.replace(self, num_classes=len(classes), classes=classes, mean=mean, std=std,
                                   crop_size=data.image_size, train_crop=data.train_crop or "random")
        write_atomic(dest / TRAIN_PATHS, lambda tmp: write_lines(tmp, lists["train"].paths))
        report_notes(summaries)
        val_labels = lists["val"].labels if "val" in lists else np.zeros(0, dtype=np.int64)
        sources = {f"{split}_list_sha256": file_digest(listing.source) for split, listing in lists.items()}
        return finish_prepared(
            spec, dest, lists["train"].labels, lists["test"].labels, val_labels, has_truth=False,
            image_shape=(3, side, side), digests={split: s.sha256 for split, s in summaries.items()},
            extra_meta={"image_size": data.image_size, "resize": side, **sources},
        )

    @staticmethod
    def _store(target: Path, root: Path, listing: ImageList | None, side: int, workers: int) -> StoreSummary:
        items = () if listing is None else listing  # (path, "list:line") per row, packed (folder_lists)
        line = RateLine(target.stem, len(items))
        summary = write_store(target, root, items, side, workers=workers, progress=line)
        rate = line.close()
        if items:
            print(f"[download] {target.name}: {len(items)} images at {side}x{side} ({rate:.0f} images/s, "
                  f"{workers} workers)", flush=True)
        return summary


def write_lines(path: Path, lines) -> None:
    """One line per item, streamed: a million paths never become one string in memory."""
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(f"{line}\n")


def report_notes(summaries: dict[str, StoreSummary]) -> None:
    """One line per kind of unusual image (CMYK, palette, 16-bit): how many, and the first of them."""
    for split, summary in summaries.items():
        for note, where in summary.notes.items():
            print(f"[download] note: {len(where)} {split} image(s) {note} (first: {sorted(where)[0]})", flush=True)


FOLDER = FolderSpec(
    name="folder",
    num_classes=0,  # known once prepared (meta.json)
    classes=(),
    pixel_scale=255.0,
    mean=(),
    std=(),
    crop_padding=0,
    hflip=True,
    asym_map=None,  # no class map: noise.mode none, sym, sym_true or file
)
