"""The list files of a folder data set: "relative/path.jpg label" lines, checked line by line.

Every refusal is one line that names the list file and line (cleanlab's way: the thing at fault
and what is allowed). The training list's labels are the given, possibly noisy, labels; the
optional verified list (`data.truth_list`) gives true labels of some training images and is read
by evaluation only.
"""

from __future__ import annotations

import dataclasses
import os
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dividemix.datasets.spec import DataSourceError

if TYPE_CHECKING:
    from dividemix.config import DataConfig

CLASSES_FILE = "classes.txt"  # optional, in data.root: one class name per line, line i names label i


class PackedPaths(Sequence):
    """Paths as one byte array and their end offsets: about len(path) + 8 bytes each.

    Held this way (not as a tuple of strings) for two reasons: a million paths cost ~50 MB instead
    of ~130 MB, and the decode workers `download` forks read them without copying: reading a
    Python string from the parent's memory writes its reference count, so the kernel copies its
    page into the worker (copy-on-write), and every worker ends up with all the paths.
    """

    def __init__(self, blob: bytes | bytearray, ends: np.ndarray):
        self._blob = np.frombuffer(blob, dtype=np.uint8) if blob else np.zeros(0, dtype=np.uint8)  # no copy
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> str:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        start = int(self._ends[i - 1]) if i else 0
        return bytes(self._blob[start : int(self._ends[i])]).decode()


@dataclass(frozen=True)
class ImageList:
    """A parsed list file: image paths (relative to `root`), labels, and their line numbers."""

    source: Path
    paths: PackedPaths
    labels: np.ndarray
    lines: np.ndarray  # (N,) line numbers
    root: Path | None = None  # the folder the paths are under (None: not resolved yet)

    def where(self, i: int) -> str:
        """"list:line" of entry i, for messages."""
        return f"{self.source}:{int(self.lines[i])}"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, str]:
        """(path, "list:line") of entry i: the items the store writer's workers decode."""
        return self.paths[i], self.where(i)


def parse_list(list_file: str | Path) -> ImageList:
    """Parse the lines (blank lines and # comments skipped); no file is opened but the list itself.

    Streamed line by line into packed arrays (`pack_entries`): no per-line object is kept, so a
    list of a million images costs tens of MB.
    """
    list_file = Path(list_file)
    entries = ((*entry(list_file, number, line), number) for number, line in text_lines(list_file, "list file")
               if not line.startswith("#"))
    return pack_entries(entries, list_file, empty="no images listed")


def text_lines(path: Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of the non-blank lines, streamed (a million-line file is never
    held); `what` names the file in the refusal when it is missing."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line := line.strip():
                    yield number, line
    except FileNotFoundError:
        raise DataSourceError(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise DataSourceError(f"{path}: not a UTF-8 text file") from None


def pack_entries(entries: Iterable[tuple[str, int, int]], source: Path, root: Path | None = None, *, empty: str,
                 unique: bool = True) -> ImageList:
    """An ImageList of (path, label, line) entries from `source`, packed; with `root`, every image
    is checked to be a file under it (`check_images`).

    `entries` is consumed as it comes (a generator over the file): no per-image object outlives
    its line, so a million images cost tens of MB. `empty`: the refusal when there is no entry.
    `unique`: an image listed twice is refused at its second line (`_refuse_duplicates`).
    """
    blob, ends, labels, lines, hashes = bytearray(), array("q"), array("q"), array("q"), array("q")
    for path, label, line in entries:
        blob += path.encode()
        ends.append(len(blob))
        labels.append(label)
        lines.append(line)
        hashes.append(hash(path))
    if not ends:
        raise DataSourceError(f"{source}: {empty}")
    listing = ImageList(source, PackedPaths(blob, np.frombuffer(ends, dtype=np.int64)),
                        np.frombuffer(labels, dtype=np.int64), np.frombuffer(lines, dtype=np.int64))
    if unique:
        _refuse_duplicates(listing, np.frombuffer(hashes, dtype=np.int64))
    return listing if root is None else check_images(listing, root)


def _refuse_duplicates(listing: ImageList, hashes: np.ndarray) -> None:
    """An image listed twice: refused at its second line (found by sorting hashes, no set of paths)."""
    order = np.argsort(hashes, kind="stable")
    same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    repeats = [(int(order[k + 1]), int(order[k])) for k in same
               if listing.paths[int(order[k])] == listing.paths[int(order[k + 1])]]  # not a hash collision
    if repeats:
        second, first = min(repeats)
        raise DataSourceError(f"{listing.where(second)}: image {listing.paths[second]!r} listed twice (first at line "
                              f"{int(listing.lines[first])}); each image may appear once")


def entry(list_file: Path, number: int, line: str) -> tuple[str, int]:
    parts = line.rsplit(None, 1)  # the path may contain spaces; the label is the last field
    if len(parts) != 2 or re.fullmatch(r"-?[0-9]+", parts[1]) is None:
        raise DataSourceError(f"{list_file}:{number}: malformed line {line[:80]!r} (want 'relative/path.jpg label')")
    path, label = parts[0], int(parts[1])
    if label < 0:
        raise DataSourceError(f"{list_file}:{number}: label {label} is negative (labels are 0..K-1)")
    if path.startswith("/") or ".." in path.split("/"):  # string checks: a PurePosixPath per line costs 2x
        raise DataSourceError(f"{list_file}:{number}: image path {path!r} must be relative to data.root, without '..'")
    return path, label


def check_images(listing: ImageList, root: Path) -> ImageList:
    """`listing` with its root: every listed image must be a file under `root`."""
    for i, path in enumerate(listing.paths):
        # os.path, not pathlib: a Path interns every component it parses, for good (a million
        # file names would stay in memory)
        if not os.path.isfile(os.path.join(root, path)):
            raise DataSourceError(f"{listing.where(i)}: image {root / path} not found")
    return dataclasses.replace(listing, root=Path(root))


def read_image_list(list_file: str | Path, root: Path) -> ImageList:
    """`parse_list`, and every listed image must be a file under `root`."""
    return check_images(parse_list(list_file), root)


def class_names(root: Path, lists: dict[str, ImageList], num_classes: int | None = None) -> tuple[tuple[str, ...], str | None]:
    """The class names and, when the count was guessed, a note saying so.

    From root/classes.txt when present (data.num_classes, if set, must agree), else "0".."K-1"
    for K = data.num_classes, else for the largest label K-1 found: a guess, never silent.
    """
    names_file, note = root / CLASSES_FILE, None
    if names_file.is_file():
        names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
        if len(names) < 2:
            raise DataSourceError(f"{names_file}: at least two class names needed, one per line")
        if num_classes is not None and num_classes != len(names):
            raise DataSourceError(f"{names_file}: names {len(names)} classes but data.num_classes is {num_classes}")
        source = str(names_file)
    elif num_classes is not None:
        names, source = tuple(str(k) for k in range(num_classes)), "data.num_classes"
    else:
        count = 1 + max(int(listing.labels.max()) for listing in lists.values())
        names, source = tuple(str(k) for k in range(count)), "the largest label"
        note = (f"{count} classes guessed from the largest label ({count - 1}); name them in {names_file} or "
                "set data.num_classes")
    for listing in lists.values():
        bad = np.flatnonzero(listing.labels >= len(names))
        if len(bad):
            i = int(bad[0])
            raise DataSourceError(f"{listing.where(i)}: label {listing.labels[i]} out of range [0, {len(names)})"
                                  f" ({source} gives {len(names)} classes)")
    if len(names) < 2:
        raise DataSourceError(f"{lists['train'].source}: every label is 0; a classifier needs at least two classes")
    return names, note


@dataclass(frozen=True)
class SourceSet:
    """A stored data set as its files describe it: each split's image list (with the root its paths
    are under), the class names, the files read (for the manifest) and notes for the user.

    Splits: "train" and "test" always; "val" (a clean validation set) and "test2" (a second test
    set, named `test2_name`) when the data set has them.
    """

    lists: dict[str, ImageList]
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    test2_name: str | None = None
    notes: tuple[str, ...] = ()


def folder_sources(data: "DataConfig") -> SourceSet:
    """A folder data set: data.root plus the list files the user names."""
    root = Path(data.root)
    if not root.is_dir():
        raise DataSourceError(f"{root}: data.root is not a folder")
    named = {"train": data.train_list, "test": data.test_list, "val": data.val_list, "test2": data.test2_list}
    lists = {split: read_image_list(path, root) for split, path in named.items() if path is not None}
    classes, note = class_names(root, lists, data.num_classes)
    files = tuple(Path(path) for path in named.values() if path is not None)
    test2 = f"second test set ({Path(data.test2_list).name})" if data.test2_list else None
    return SourceSet(lists, classes, files, test2, (note,) if note else ())


def verified_subset(truth_list: str | Path, train_paths: Sequence[str],
                    num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The verified list as (training-set indices, true labels), both sorted by index.

    Every image it names must be in the training list (its path as written there); labels in
    [0, num_classes).
    """
    listing = parse_list(truth_list)
    row_of = {path: row for row, path in enumerate(train_paths)}
    rows = np.empty(len(listing.paths), dtype=np.int64)
    for i, path in enumerate(listing.paths):
        row = row_of.get(path)
        if row is None:
            raise DataSourceError(f"{listing.where(i)}: image {path!r} is not in the training list (data.train_list);"
                                  " the verified list names training images only")
        if listing.labels[i] >= num_classes:
            raise DataSourceError(f"{listing.where(i)}: label {listing.labels[i]} out of range [0, {num_classes})")
        rows[i] = row
    order = np.argsort(rows)
    return rows[order], listing.labels[order]
