"""scikit-learn's bundled 8x8 digits: the embedded, offline default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dividemix.datasets.prepared import write_prepared
from dividemix.datasets.spec import DatasetSpec

if TYPE_CHECKING:
    from dividemix.config import DataConfig


@dataclass(frozen=True)
class DigitsSpec(DatasetSpec):
    """1,797 images of values 0..16, a fixed stratified 1,437 / 360 split."""

    n_test: int = 360
    split_seed: int = 0

    def prepare(self, dest: Path, data: "DataConfig | None" = None) -> dict:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = bunch.images.astype(np.uint8)[:, None, :, :]  # values 0..16
        labels = bunch.target.astype(np.int64)
        train_x, test_x, train_y, test_y = train_test_split(
            images, labels, test_size=self.n_test, stratify=labels, random_state=self.split_seed
        )
        return write_prepared(self, dest, train_x, train_y, test_x, test_y)


DIGITS = DigitsSpec(
    name="digits",
    num_classes=10,
    classes=tuple(str(d) for d in range(10)),
    pixel_scale=16.0,
    mean=(0.3053,),
    std=(0.3760,),
    crop_padding=1,
    hflip=False,
    asym_map={7: 1, 1: 7, 3: 8, 8: 3, 5: 6, 6: 5},
)
