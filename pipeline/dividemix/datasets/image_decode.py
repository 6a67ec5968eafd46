"""One listed image to one stored row: decode, convert to RGB, the reference's Resize, a centre square.

The reference loaders open every image with `Image.open(path).convert('RGB')` and apply
`transforms.Resize(side)` (the short side to `side`, the aspect ratio kept, bilinear) before their
crops. The store keeps the centre side x side square of that (`transforms.CenterCrop(side)`), so
every row has one shape. The reference's evaluation crop, CenterCrop(crop) of the *whole* resized
image, can sit one pixel off the centre of that square (two roundings instead of one), so
`decode_row` also gives its corner in the square, per image (`eval_corner`): evaluation takes
exactly the reference's pixels. Sizes and offsets follow torchvision's own rules
(`_compute_resized_output_size`, `center_crop`); tests check equality with torchvision.

Pillow only (no torch): decoding runs in worker processes that should start in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Modes that `convert('RGB')` would get wrong: 16- and 32-bit greys are clipped at 255 (an
# almost white image); they are scaled to 8 bits first. Noted, not refused.
WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")
NOTED_MODES = {"CMYK": "CMYK, converted to RGB", "P": "palette, converted to RGB", **{m: "16/32-bit grey, scaled to 8 bits" for m in WIDE_GREY}}


class ImageDecodeError(ValueError):
    """An image that cannot be read (missing, truncated, not an image): message names the file."""


def resized_size(width: int, height: int, side: int) -> tuple[int, int]:
    """torchvision Resize(side) of a PIL image: the short side to `side`, the long one int(side * long / short)."""
    if width <= height:
        return side, int(side * height / width)
    return int(side * width / height), side


def centre_box(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """torchvision CenterCrop(side): (left, top, right, bottom) with int(round((extent - side) / 2)) offsets."""
    left, top = int(round((width - side) / 2.0)), int(round((height - side) / 2.0))
    return left, top, left + side, top + side


def to_rgb(image: Image.Image) -> Image.Image:
    """`convert('RGB')` as the reference, except 16/32-bit greys, which are scaled to 8 bits first."""
    if image.mode in WIDE_GREY:
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or wide.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(wide * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def eval_corner(width: int, height: int, side: int, crop: int) -> tuple[int, int]:
    """(top, left) of CenterCrop(crop) of a resized width x height image, in its stored centre
    side x side square (torchvision rounds each offset once, from the whole image)."""
    left, top, _, _ = centre_box(width, height, crop)
    square_left, square_top, _, _ = centre_box(width, height, side)
    return min(max(top - square_top, 0), side - crop), min(max(left - square_left, 0), side - crop)


def decode_row(path: Path, side: int, crop: int | None = None) -> tuple[np.ndarray, str | None, tuple[int, int]]:
    """The stored row of the image at `path`: (3, side, side) uint8, a note for an unusual mode,
    and the (top, left) corner of the reference's evaluation crop of size `crop` in the row.

    Raises ImageDecodeError (the cause in a few words) for a file Pillow cannot decode whole.
    """
    try:
        with Image.open(path) as image:
            note = NOTED_MODES.get(image.mode)
            image.load()  # decode now: a truncated file fails here, not later
            rgb = to_rgb(image)
    except FileNotFoundError:
        raise ImageDecodeError("not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(str(exc) or type(exc).__name__) from None
    width, height = rgb.size
    rgb = rgb.resize(resized_size(width, height, side), Image.BILINEAR)
    square = rgb.crop(centre_box(*rgb.size, side))
    corner = eval_corner(*rgb.size, side, side if crop is None else crop)
    return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1), note, corner
