"""`DatasetSpec`: what the pipeline needs to know about a data set, and the interface of a family.

A family (`digits`, `cifar`, `folder`) subclasses it and implements `prepare`, which writes the
prepared folder (`datasets.prepared`). Everything training needs of the spec (classes,
normalisation, training augmentation, the asymmetric-noise map) is written into that folder's
meta.json, so training reads the folder alone and never imports a family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dividemix.config import DataConfig


class DataSourceError(ValueError):
    """An archive, a list file or an image is missing, corrupt or malformed (message: one line)."""


@dataclass(frozen=True)
class DatasetSpec:
    """A data set's classes, normalisation, training augmentation and asymmetric-noise map."""

    name: str
    num_classes: int
    classes: tuple[str, ...]
    pixel_scale: float  # the uint8 value that means "full intensity" (16 for digits, 255 for photos)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # random translation of up to this many pixels (zero padding, then crop)
    hflip: bool  # random horizontal flip (never for digits: a mirrored digit is another digit)
    asym_map: dict[int, int] | None = field(default=None)
    # The network's input: a crop_size x crop_size crop of the stored image (random for training,
    # centred for evaluation), 0: the stored image itself (digits, CIFAR).
    crop_size: int = 0
    # The training crop: "translate" (zero padding + crop to the same size, CIFAR's RandomCrop(32,
    # padding=4)), "random" (RandomCrop(crop_size), Clothing1M) or "random_resized"
    # (RandomResizedCrop(crop_size), WebVision).
    train_crop: str = "translate"

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        """Write the prepared folder `dest`; `data` is the config's data section (sources, paths)."""
        raise NotImplementedError
