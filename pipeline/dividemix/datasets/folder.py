"""Data sets stored from image files: your own folder with list files, and the published layouts
of Clothing1M and WebVision, at any size.

Each is read by its reader (`layouts`: the splits, the classes, the files); `download` then
decodes every listed image once, in parallel, into the prepared store (`image_store`): the short
side resized to data.resize and the centre square kept (`image_decode`), the reference's
Resize(256) / Resize(320) before its crops, with each row's corner of the reference's evaluation
crop. Training streams batches from that store and crops on the device (`images.streamed`);
nothing holds all images in memory. The training labels are the *given* (noisy) ones: there is
no training truth.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dividemix.datasets.folder_lists import ImageList, SourceSet
from dividemix.datasets.image_store import RateLine, StoreSummary, write_store
from dividemix.datasets.layouts import source_set
from dividemix.datasets.prepared import EVAL_SPLITS, SPLIT_IMAGES, TRAIN_PATHS, crop_path, finish_prepared, save_npy
from dividemix.datasets.spec import DatasetSpec
from dividemix.files.atomic import file_digest, write_atomic

if TYPE_CHECKING:
    from dividemix.config import DataConfig

SPLITS = ("train", *EVAL_SPLITS)


@dataclass(frozen=True)
class StoredSpec(DatasetSpec):
    """A data set decoded from image files under data.root into the prepared store.

    The registry's entry holds the reference's transforms for the data set (`crop_size`,
    `resize`, `train_crop`, `mean`/`std`; a user folder has none: data.image_size and measured
    statistics); data.* keys override them. The classes come from the files: `prepare` writes
    them, with the statistics, into meta.json, where training reads them.
    """

    resize: int = 0  # the stored side; 0: round(crop_size * 8 / 7), the reference's 256 for 224

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        sources = source_set(data)
        spec = self.resolved(data, sources)
        dest.mkdir(parents=True, exist_ok=True)
        side = self.stored_side(data)
        workers = data.workers or os.cpu_count() or 1
        summaries = {split: _store(dest, split, sources.lists.get(split), side, spec.crop_size, workers)
                     for split in SPLITS}
        if data.mean is None and not spec.mean:
            spec = dataclasses.replace(spec, **dict(zip(("mean", "std"), summaries["train"].mean_std())))
        write_atomic(dest / TRAIN_PATHS, lambda tmp: write_lines(tmp, sources.lists["train"].paths))
        report_notes(summaries, sources.notes)
        labels = {split: listing.labels if (listing := sources.lists.get(split)) is not None
                  else np.zeros(0, dtype=np.int64) for split in EVAL_SPLITS}
        digests = {f"{split}_list_sha256": file_digest(listing.source) for split, listing in sources.lists.items()
                   if listing.source.is_file()}
        return finish_prepared(
            spec, dest, sources.lists["train"].labels, labels, has_truth=False,
            image_shape=(3, side, side), digests={split: s.sha256 for split, s in summaries.items()},
            extra_meta={"image_size": spec.crop_size, "resize": side, "test2_name": sources.test2_name,
                        "eval_crop": "corners", **digests},
        )

    def resolved(self, data: "DataConfig", sources: SourceSet) -> "StoredSpec":
        """This spec with the data's classes and the data.* keys that override the reference's."""
        keys = {"num_classes": len(sources.classes), "classes": sources.classes,
                "crop_size": data.image_size or self.crop_size, "train_crop": data.train_crop or self.train_crop}
        if data.mean is not None:
            keys |= {"mean": tuple(data.mean), "std": tuple(data.std)}
        return dataclasses.replace(self, **keys)

    def stored_side(self, data: "DataConfig") -> int:
        """data.resize, the reference's for the data set, or the ratio 256 / 224 of the crop."""
        crop = data.image_size or self.crop_size
        return data.resize or (self.resize if not data.image_size else 0) or int(round(crop * 8 / 7))


def _store(dest: Path, split: str, listing: ImageList | None, side: int, crop: int, workers: int) -> StoreSummary:
    """One split's rows into its store, and each row's evaluation-crop corner beside it. Every
    split's files exist (an empty split: empty files), so every prepared folder looks alike."""
    target = dest / SPLIT_IMAGES[split]
    items = () if listing is None else listing  # (path, "list:line") per row, packed (folder_lists)
    line = RateLine(target.stem, len(items))
    summary = write_store(target, listing.root if listing else dest, items, side, workers=workers, crop=crop,
                          progress=line)
    rate = line.close()
    write_atomic(crop_path(dest, split), lambda tmp: save_npy(tmp, summary.corners))
    if items:
        print(f"[download] {target.name}: {len(items)} images at {side}x{side} ({rate:.0f} images/s, "
              f"{workers} workers)", flush=True)
    return summary


def write_lines(path: Path, lines) -> None:
    """One line per item, streamed: a million paths never become one string in memory."""
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(f"{line}\n")


def report_notes(summaries: dict[str, StoreSummary], notes: tuple[str, ...]) -> None:
    """The reader's notes (a class filter, a guessed class count), then one line per kind of
    unusual image (CMYK, palette, 16-bit): how many, and the first of them."""
    for note in notes:
        print(f"[download] note: {note}", flush=True)
    for split, summary in summaries.items():
        for note, where in summary.notes.items():
            print(f"[download] note: {len(where)} {split} image(s) {note} (first: {sorted(where)[0]})", flush=True)


FOLDER = StoredSpec(
    name="folder",
    num_classes=0,  # known once prepared (meta.json)
    classes=(),
    pixel_scale=255.0,
    mean=(),  # measured by download (or data.mean / data.std)
    std=(),
    crop_padding=0,
    hflip=True,
    asym_map=None,  # no class map: noise.mode none, sym, sym_true or file
    train_crop="random",
)
# dataloader_clothing1M.py: Resize(256), RandomCrop(224) + flip / CenterCrop(224), its constants.
CLOTHING1M = dataclasses.replace(FOLDER, name="clothing1m", crop_size=224, resize=256, train_crop="random",
                                 mean=(0.6959, 0.6537, 0.6371), std=(0.3113, 0.3192, 0.3214))
# dataloader_webvision.py: Resize(320), RandomResizedCrop(299) + flip / CenterCrop(299), ImageNet's.
WEBVISION = dataclasses.replace(FOLDER, name="webvision", crop_size=299, resize=320, train_crop="random_resized",
                                mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
