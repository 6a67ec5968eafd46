"""Clothing1M as published (Cysu/noisy_label): key lists and "key label" files, read as the official
DivideMix loader reads them (`dl_c` = DivideMix-official/dataloader_clothing1M.py).

train = noisy_train_key_list.txt labelled by noisy_label_kv.txt; val and test = the clean key lists
labelled by clean_label_kv.txt. Keys look like "images/0/00/1429296456,2096860000.jpg". The text
files are found at data.root or under data.root/annotations/; data.root is either the Clothing1M
folder (holding images/) or, as the official loader wants it, that images/ folder itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dividemix.datasets.folder_lists import ImageList, SourceSet, pack_entries, text_lines
from dividemix.datasets.spec import DataSourceError

if TYPE_CHECKING:
    from dividemix.config import DataConfig

CLASSES = 14
NOISY_KV, CLEAN_KV = "noisy_label_kv.txt", "clean_label_kv.txt"
TRAIN_KEYS, VAL_KEYS, TEST_KEYS = "noisy_train_key_list.txt", "clean_val_key_list.txt", "clean_test_key_list.txt"
NAMES_FILE = "category_names_eng.txt"  # optional: line i names class i
PREFIX = "images/"  # every published key starts with it; dl_c L23: key[7:] strips it
PLACES = (".", "annotations")  # where the text files may be, under data.root (first holding NOISY_KV wins)
_INTEGER = re.compile(r"-?[0-9]+")


def clothing1m_sources(data: "DataConfig") -> SourceSet:
    """train / val / test of the published Clothing1M, every image checked; see the module docstring."""
    root = Path(data.root)
    if not root.is_dir():
        raise DataSourceError(f"data.root: {root} is not a folder")
    where = _text_folder(root)
    named = {name: where / name for name in (NOISY_KV, CLEAN_KV, TRAIN_KEYS, VAL_KEYS, TEST_KEYS)}
    for path in named.values():
        if not path.is_file():
            raise DataSourceError(f"{path}: Clothing1M file not found (the text files are read from the first "
                                  f"of {_places(root, ', ')} that holds {NOISY_KV})")
    strip = _strips_prefix(root, named[TRAIN_KEYS])
    repeats: list[str] = []
    noisy = _read_kv(named[NOISY_KV], repeats)  # dl_c L19-24: training labels
    lists = {"train": _split(named[TRAIN_KEYS], named[NOISY_KV], noisy, root, strip)}
    del noisy  # ~1M keys: not held past building the list
    clean = _read_kv(named[CLEAN_KV], repeats)  # dl_c L25-30: val and test labels
    lists["val"] = _split(named[VAL_KEYS], named[CLEAN_KV], clean, root, strip)  # dl_c L70
    lists["test"] = _split(named[TEST_KEYS], named[CLEAN_KV], clean, root, strip)  # dl_c L63
    del clean
    classes, notes = _class_names(where / NAMES_FILE)
    notes += tuple(repeats)
    files = tuple(named.values()) + ((where / NAMES_FILE,) if (where / NAMES_FILE).is_file() else ())
    return SourceSet(lists, classes, files, None, notes)


def _places(root: Path, joiner: str = " and ") -> str:
    return joiner.join(str(root if place == "." else root / place) for place in PLACES)


def _text_folder(root: Path) -> Path:
    """The folder of the text files: data.root (the official loader's) or data.root/annotations."""
    for place in PLACES:
        if (root / place / NOISY_KV).is_file():
            return root if place == "." else root / place
    raise DataSourceError(f"{root / NOISY_KV}: Clothing1M file not found (looked in {_places(root)})")


def _strips_prefix(root: Path, key_list: Path) -> bool:
    """Whether keys lose their "images/" (data.root is the images folder, dl_c L23) or resolve as
    written (data.root holds images/): one convention for the data set, seen on the first key."""
    number, key = next(iter(text_lines(key_list)), (0, ""))
    if not key:
        raise DataSourceError(f"{key_list}: no images listed")
    if (root / "images").is_dir():
        return False
    if key.startswith(PREFIX) and os.path.isfile(os.path.join(root, key[len(PREFIX):])):
        return True
    raise DataSourceError(f"{key_list}:{number}: image {key} is neither at {root / key} nor at "
                          f"{root / key[len(PREFIX):]} (data.root: the Clothing1M folder holding images/, "
                          "or that images/ folder)")


def _read_kv(kv_file: Path, repeats: list[str]) -> dict[str, int]:
    """key -> label of a "key label" file; labels in [0, 14); a key given two labels is refused.

    A key repeated with the same label is read once, as the official loader's dict reads it (dl_c
    L24: a repeat changes nothing), and counted in a note appended to `repeats`, not refused: a
    harmless repeat in a million-line file must not stop a run the official code accepts.
    """
    labels: dict[str, int] = {}
    first, count = 0, 0
    for number, line in text_lines(kv_file):
        parts = line.split()  # dl_c L21: l.split(), key then label
        if len(parts) != 2 or _INTEGER.fullmatch(parts[1]) is None:
            raise DataSourceError(f"{kv_file}:{number}: malformed line {line[:80]!r} (want 'images/.../name.jpg "
                                  "label', an integer label)")
        label = int(parts[1])
        if not 0 <= label < CLASSES:
            raise DataSourceError(f"{kv_file}:{number}: label {label} out of range [0, {CLASSES}) "
                                  f"(Clothing1M has {CLASSES} classes)")
        size = len(labels)
        known = labels.setdefault(parts[0], label)
        if known != label:
            raise DataSourceError(f"{kv_file}:{number}: key {parts[0]} labelled {label} here but "
                                  f"{known} on an earlier line; a key has one label")
        if len(labels) == size:  # the key again, with its label
            first, count = first or number, count + 1
    if count:
        repeats.append(f"{kv_file.name}: {count} line(s) repeat an earlier key with the same label (first at line "
                       f"{first}); each key read once, as the official loader does")
    return labels


def _split(key_list: Path, kv_file: Path, labels: dict[str, int], root: Path, strip: bool) -> ImageList:
    """One split: the key list's keys in its order (row i = i-th key), each labelled by `labels`,
    images checked. Paths are relative to data.root under either convention."""

    def entries() -> Iterator[tuple[str, int, int]]:
        for number, key in text_lines(key_list):
            path, label = _relative(key_list, number, key, strip), labels.get(key)
            if label is None:
                raise DataSourceError(f"{key_list}:{number}: key {key} has no label in {kv_file}")
            yield path, label, number

    return pack_entries(entries(), key_list, root, empty="no images listed")


def _relative(key_list: Path, number: int, key: str, strip: bool) -> str:
    """The key as a path under data.root: without "images/" when data.root is that folder (dl_c L37)."""
    if key.startswith("/") or ".." in key.split("/"):  # strings, not PurePosixPath: a million keys
        raise DataSourceError(f"{key_list}:{number}: key {key} must be a relative path without '..'")
    if not strip:
        return key
    if not key.startswith(PREFIX):
        raise DataSourceError(f"{key_list}:{number}: key {key} does not start with {PREFIX!r} (data.root is "
                              "the images folder, so every key must name an image under it)")
    return key[len(PREFIX):]


def _class_names(names_file: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The 14 names of category_names_eng.txt (line i = class i), else "0".."13" with a note."""
    if not names_file.is_file():
        return tuple(str(k) for k in range(CLASSES)), (f"class names: {names_file.name} not found; classes "
                                                       f"named 0..{CLASSES - 1}",)
    try:
        names = [line.strip() for line in names_file.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError:
        raise DataSourceError(f"{names_file}: not a UTF-8 text file") from None
    while names and not names[-1]:
        names.pop()  # a trailing newline or two, not a class
    if len(names) != CLASSES or not all(names):
        raise DataSourceError(f"{names_file}: {len(names)} lines, want {CLASSES} non-empty class names (one per "
                              "line, line i names class i)")
    return tuple(names), ()
