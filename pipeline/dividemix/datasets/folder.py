"""Your own images, in the layout of Clothing1M: `data.root` plus list files.

A list file has one "relative/path.jpg label" line per image; the training list's labels are the
*given* (already noisy) labels: there is no training truth. Images are decoded, resized to
data.image_size square and stored as uint8 arrays, so the whole set lives on the device as for
CIFAR: fine up to a few hundred thousand images at modest sizes (100,000 x 3 x 64 x 64 is 1.2 GB).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from dividemix.datasets.prepared import write_prepared
from dividemix.datasets.spec import DatasetSpec, DataSourceError
from dividemix.io import file_digest

if TYPE_CHECKING:
    from dividemix.config import DataConfig

CLASSES_FILE = "classes.txt"  # optional, in data.root: one class name per line, line i names label i


@dataclass(frozen=True)
class ImageList:
    """A parsed list file: image paths (relative to data.root), labels, and their line numbers."""

    source: Path
    paths: tuple[str, ...]
    labels: np.ndarray
    lines: tuple[int, ...]


def read_image_list(list_file: str | Path, root: Path) -> ImageList:
    """Parse "relative/path.jpg label" lines (blank lines and # comments skipped); check files exist."""
    list_file = Path(list_file)
    try:
        text = list_file.read_text()
    except FileNotFoundError:
        raise DataSourceError(f"{list_file}: list file not found") from None
    except UnicodeDecodeError:
        raise DataSourceError(f"{list_file}: not a text file") from None
    paths, labels, lines = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)  # the path may contain spaces; the label is the last field
        if len(parts) != 2 or re.fullmatch(r"-?[0-9]+", parts[1]) is None:
            raise DataSourceError(f"{list_file}:{number}: malformed line {line[:80]!r} (want 'relative/path.jpg label')")
        path, label = parts[0], int(parts[1])
        if label < 0:
            raise DataSourceError(f"{list_file}:{number}: label {label} is negative")
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            raise DataSourceError(f"{list_file}:{number}: image path {path!r} must be relative to data.root, without '..'")
        if not (root / path).is_file():
            raise DataSourceError(f"{list_file}:{number}: image {root / path} not found")
        paths.append(path)
        labels.append(label)
        lines.append(number)
    if not paths:
        raise DataSourceError(f"{list_file}: no images listed")
    return ImageList(list_file, tuple(paths), np.asarray(labels, dtype=np.int64), tuple(lines))


def load_images(listing: ImageList, root: Path, size: int) -> np.ndarray:
    """Decode every listed image as RGB, resize it to size x size (antialiased); (N, 3, size, size) uint8.

    Decoded with Pillow (torchvision.io's decoders are deprecated from torchvision 0.29), resized
    with torchvision's resize on the uint8 tensor. The aspect ratio is not kept (a plain resize,
    as Clothing1M's Resize((256, 256)) in the reference).
    """
    import torch  # here: digits and CIFAR downloads need no torch (seconds of import)
    from PIL import Image
    from torchvision.transforms.v2 import functional as tvf

    out = np.empty((len(listing.paths), 3, size, size), dtype=np.uint8)
    for i, (path, line) in enumerate(zip(listing.paths, listing.lines)):
        try:
            with Image.open(root / path) as image:
                rgb = np.array(image.convert("RGB"))  # a writable copy for torch.from_numpy
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataSourceError(f"{listing.source}:{line}: cannot read image {root / path} ({exc})") from None
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)
        out[i] = tvf.resize(tensor, [size, size], antialias=True).numpy()
    return out


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, as fractions of 255 (computed in chunks, float64)."""
    total = np.zeros(images.shape[1])
    squares = np.zeros(images.shape[1])
    for start in range(0, len(images), 1024):
        chunk = images[start : start + 1024].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    # A floor of one grey level: a constant channel would otherwise divide by zero.
    std = np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 1 / 255)
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


@dataclass(frozen=True)
class FolderSpec(DatasetSpec):
    """Your own images in the layout of Clothing1M: data.root plus list files.

    The registry's entry knows nothing of the classes or statistics: `prepare` measures them and
    writes them into meta.json, where training reads them (`prepared.spec_from_meta`).
    """

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        if data is None or None in (data.root, data.train_list, data.test_list, data.image_size):
            raise DataSourceError("data.dataset 'folder' needs data.root, data.train_list, data.test_list and data.image_size")
        root, size = Path(data.root), data.image_size
        if not root.is_dir():
            raise DataSourceError(f"{root}: data.root is not a folder")
        lists = {"train": read_image_list(data.train_list, root), "test": read_image_list(data.test_list, root)}
        if data.val_list is not None:
            lists["val"] = read_image_list(data.val_list, root)
        classes = self._classes(root, lists)
        images = {split: load_images(listing, root, size) for split, listing in lists.items()}
        mean, std = channel_stats(images["train"])
        spec = dataclasses.replace(
            self, num_classes=len(classes), classes=classes, mean=mean, std=std, crop_padding=folder_crop_padding(size)
        )
        val = (images["val"], lists["val"].labels) if "val" in lists else None
        sources = {f"{split}_list_sha256": file_digest(listing.source) for split, listing in lists.items()}
        return write_prepared(
            spec, dest, images["train"], lists["train"].labels, images["test"], lists["test"].labels,
            val=val, has_truth=False, extra_meta={"image_size": size, **sources},
        )

    @staticmethod
    def _classes(root: Path, lists: dict[str, ImageList]) -> tuple[str, ...]:
        """Names from root/classes.txt when present, else "0".."K-1" for the largest label K-1 found."""
        names_file = root / CLASSES_FILE
        if names_file.is_file():
            names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
            if len(names) < 2:
                raise DataSourceError(f"{names_file}: at least two class names needed, one per line")
        else:
            names = tuple(str(k) for k in range(1 + max(int(listing.labels.max()) for listing in lists.values())))
        for listing in lists.values():
            bad = np.flatnonzero(listing.labels >= len(names))
            if len(bad):
                i = int(bad[0])
                raise DataSourceError(
                    f"{listing.source}:{listing.lines[i]}: label {listing.labels[i]} out of range [0, {len(names)})"
                    f" ({names_file} names {len(names)} classes)"
                )
        if len(names) < 2:
            raise DataSourceError(f"{lists['train'].source}: every label is 0; a classifier needs at least two classes")
        return names


def folder_crop_padding(image_size: int) -> int:
    """Random-translation range of folder images: 1/8 of the side (CIFAR's 4 pixels at 32)."""
    return max(1, image_size // 8)


FOLDER = FolderSpec(
    name="folder",
    num_classes=0,  # known once prepared (meta.json)
    classes=(),
    pixel_scale=255.0,
    mean=(),
    std=(),
    crop_padding=0,
    hflip=True,
    asym_map=None,  # no truth to corrupt: noise.mode none or file
)
