"""What a data set is made of, cheaply: the manifest `check` writes and `download` depends on.

A stored data set's images (a folder, Clothing1M, WebVision) live outside the repository and are
named by parameters, so DVC cannot list them as dependencies. The `check` stage (which DVC runs
on every `dvc repro`, `always_changed`) writes data/sources.json: the SHA-256 of every annotation
or list file the data set's reader reads (`layouts`) and, for the listed images, their count,
total size and one SHA-256 over "split path size mtime" lines in list order (streamed: no
per-image record is kept), taken with two `stat`s per image (the reader's existence check, then
size and time: seconds for a million; no image is read). `download` depends on that file: when an image
is added to a list, removed, replaced or touched, or a list line changes, the manifest changes
and DVC reruns `download` and what follows; otherwise everything stays cached. `download` takes
the manifest again after decoding and refuses a folder that changed under it.

Digits and CIFAR need none of this (embedded data, archives pinned by md5): their manifest is
the data set's name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dividemix.datasets.folder_lists import verified_subset
from dividemix.datasets.layouts import source_set
from dividemix.datasets.spec import DataSourceError
from dividemix.files.atomic import file_digest

if TYPE_CHECKING:
    from dividemix.config import DataConfig

def manifest(data: "DataConfig") -> dict:
    """The data set's sources as data/sources.json records them (see the module docstring)."""
    if data.root is None:
        return {"dataset": data.dataset}
    root = Path(data.root)
    if not root.is_dir():
        raise DataSourceError(f"data.root: {root} is not a folder")
    sources = source_set(data)  # the reader's checks: every file and image it names exists
    files = {str(path): file_digest(path) for path in sources.files}
    lists, images = {}, {"count": 0, "bytes": 0}
    digest = hashlib.sha256()
    for split, listing in sources.lists.items():
        lists[split] = {"source": str(listing.source), "root": str(listing.root), "images": len(listing.paths)}
        for i, path in enumerate(listing.paths):  # streamed: one line at a time into the digest
            size, line = _stat_line(listing.root, path, listing.where(i))
            digest.update(f"{split}\t{line}\n".encode())
            images["count"] += 1
            images["bytes"] += size
    if data.truth_list is not None:
        # checked before anything runs; its labels' range is checked by download and evaluate
        verified_subset(data.truth_list, sources.lists["train"].paths, num_classes=1 << 62)
    return {"dataset": data.dataset, "root": str(root), "files": files, "lists": lists,
            "images": images | {"sha256": digest.hexdigest()}}


def truth_manifest(data: "DataConfig") -> dict:
    """The verified subset's list by its SHA-256 (data/truth_list.json): what evaluate and report
    depend on, apart from download's manifest, so that adding a truth list reruns no training."""
    if data.truth_list is None:
        return {"truth_list": None}
    return {"truth_list": str(data.truth_list), "sha256": file_digest(data.truth_list)}


def _stat_line(root: Path, path: str, where: str) -> tuple[int, str]:
    """(size, "path size mtime_ns") of one listed image."""
    try:
        info = os.stat(os.path.join(root, path))  # not pathlib: it would intern every file name
    except FileNotFoundError:
        raise DataSourceError(f"{where}: image {root / path} not found") from None
    return info.st_size, f"{path}\t{info.st_size}\t{info.st_mtime_ns}"
