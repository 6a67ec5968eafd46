"""Images to predict on, and the run's evaluation transform up to normalisation (no torch).

An input is an image file, a folder (every image file under it, sorted) or a list file
(`path` or `path label` lines, paths relative to `root` or else to the list's folder: the
folder data sets' lists). Each image becomes the networks' uint8 input exactly as the run's
`download` stage and evaluation crop made its test images:

- stored data sets (folder, clothing1m, webvision): `image_decode.decode_row` (RGB, the short
  side resized to the stored side, the centre square), then the reference's evaluation crop at
  the corner it gives: CenterCrop(image_size) of the whole resized image;
- embedded data sets (digits, CIFAR): the stored image *is* the network's input, with no resize
  in their evaluation transform; a file must already have that size (refused otherwise).

Normalisation is left to the caller (`Preprocessing.mean`/`std`, in fractions of `scale`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dividemix.datasets.image_decode import ImageDecodeError, decode_row, to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LIST_SUFFIXES = (".txt", ".lst", ".list")
FILE_SCALE = 255.0  # full intensity of an 8-bit image file (the digits store keeps 0..16 instead)


class ServingError(ValueError):
    """A run, an input or an export that cannot be used (message: one line naming it)."""


@dataclass(frozen=True)
class Preprocessing:
    """What the networks expect, as the run's prepared meta.json records it."""

    dataset: str
    channels: int
    size: int  # the network's input side
    resize: int | None  # stored data sets: the short side images are resized to (then the centre square)
    crop: int | None  # stored data sets: the evaluation crop, CenterCrop(crop) of the resized image
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stored_scale: float  # full intensity in the prepared arrays (16 for digits, 255 otherwise)

    @classmethod
    def from_meta(cls, meta: dict) -> "Preprocessing":
        channels, side = int(meta["image_shape"][0]), int(meta["image_shape"][-1])
        crop = int(meta.get("crop_size") or 0) or None
        return cls(
            dataset=meta["dataset"], channels=channels, size=crop or side,
            resize=int(meta.get("resize") or side) if crop else None, crop=crop,
            mean=tuple(float(m) for m in meta["mean"]), std=tuple(float(s) for s in meta["std"]),
            stored_scale=float(meta["pixel_scale"]),
        )

    def describe(self) -> dict:
        """model.json's preprocessing entry: enough for a server to rebuild the input by hand."""
        color = "L (8-bit grey)" if self.channels == 1 else "RGB"
        return {
            "color": color,
            "resize_short_side": self.resize,
            "resize_interpolation": "bilinear (Pillow), aspect ratio kept" if self.resize else None,
            "center_crop": self.crop,
            "input_size": [self.channels, self.size, self.size],
            "file_exactly_input_size": self.resize is None,
            "pixel_scale": FILE_SCALE,
            "stored_pixel_scale": self.stored_scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "formula": "x = (pixel - mean * pixel_scale) / (std * pixel_scale), float32, NCHW",
        }

    def file_row(self, path: Path) -> np.ndarray:
        """The network's uint8 input (C, size, size) from an image file; ImageDecodeError if unreadable."""
        if self.resize is not None:
            square, _, (top, left) = decode_row(path, self.resize, self.crop)
            return square[:, top : top + self.crop, left : left + self.crop]
        try:
            with Image.open(path) as image:
                image.load()  # decode now: a truncated file fails here
                rgb = to_rgb(image)
        except FileNotFoundError:
            raise ImageDecodeError("not found") from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageDecodeError(str(exc) or type(exc).__name__) from None
        if rgb.size != (self.size, self.size):
            raise ImageDecodeError(
                f"{rgb.size[0]}x{rgb.size[1]} pixels; a {self.dataset} run's networks take {self.size}x{self.size} "
                "images with no resize in their evaluation transform: resize it first"
            )
        pixels = np.asarray(rgb.convert("L") if self.channels == 1 else rgb, dtype=np.uint8)
        return pixels[None] if self.channels == 1 else pixels.transpose(2, 0, 1)


@dataclass(frozen=True)
class Item:
    """One image to predict on: its file, as shown in the output, and its label when a list gives one."""

    path: Path
    shown: str
    label: int | None = None


def collect(inputs: list[str], root: str | Path | None = None) -> list[Item]:
    """Every image named by `inputs` (files, folders, list files), in order; a missing one refused."""
    items: list[Item] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ServingError(f"{spec}: a folder with no image file ({', '.join(IMAGE_SUFFIXES)})")
            items += [Item(p, str(p)) for p in found]
        elif path.suffix.lower() in LIST_SUFFIXES:
            items += list(read_list(path, Path(root) if root is not None else None))
        elif path.is_file():
            items.append(Item(path, spec))
        else:
            raise ServingError(f"{spec}: no such image, folder or list file")
    if not items:
        raise ServingError("no image to predict on: name image files, folders or list files, or --split")
    return items


def read_list(list_file: Path, root: Path | None) -> Iterator[Item]:
    """`path` or `path label` lines (blank lines and # comments skipped), paths under `root`
    (None: the list's folder); each line's file must exist."""
    base = root if root is not None else list_file.parent
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ServingError(f"{list_file}: no such list file") from None
    except UnicodeDecodeError:
        raise ServingError(f"{list_file}: not a UTF-8 text list") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(None, 1)
        label = None
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            text, label = parts[0], int(parts[1])
            if label < 0:
                raise ServingError(f"{list_file}:{number}: label {label}: expected a class number >= 0")
        path = base / text
        if not path.is_file():
            raise ServingError(f"{list_file}:{number}: {path}: no such image file")
        yield Item(path, text, label)
