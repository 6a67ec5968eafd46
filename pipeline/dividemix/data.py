"""Data sets: preparation on disk, loading onto the device, batched augmentation on tensors.

A data set is a `DatasetSpec`: how to prepare it (download or copy into `data/prepared/`), its
classes, normalisation, training augmentation and asymmetric-noise map. The prepared folder holds
uint8 image arrays and, in a file of its own, the true training labels (`train_truth.npy`), which
only the noise stage (to corrupt them) and evaluation (to judge) ever open.

Layout of a prepared folder::

    meta.json            data set name, classes, image shape, pixel scale, mean/std, sizes
    train_images.npy     (N, C, H, W) uint8
    train_truth.npy      (N,) int64   -- true training labels: never read by training
    test_images.npy      (M, C, H, W) uint8
    test_labels.npy      (M,) int64   -- the held-out clean test set, used to report accuracy
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dividemix.io import write_atomic, write_json_atomic

TRAIN_IMAGES = "train_images.npy"
TRAIN_TRUTH = "train_truth.npy"
TEST_IMAGES = "test_images.npy"
TEST_LABELS = "test_labels.npy"
META = "meta.json"


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a data set (extended by CIFAR and folders later)."""

    name: str
    num_classes: int
    classes: tuple[str, ...]
    pixel_scale: float  # the uint8 value that means "full intensity" (16 for digits, 255 for photos)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # random translation of up to this many pixels (zero padding, then crop)
    hflip: bool  # random horizontal flip (never for digits: a mirrored digit is another digit)
    asym_map: dict[int, int] | None = field(default=None)

    def prepare(self, dest: Path) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class DigitsSpec(DatasetSpec):
    """scikit-learn's bundled 8x8 digits: offline, 1,797 images, fixed stratified 1,437/360 split."""

    n_test: int = 360
    split_seed: int = 0

    def prepare(self, dest: Path) -> dict:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = bunch.images.astype(np.uint8)[:, None, :, :]  # values 0..16
        labels = bunch.target.astype(np.int64)
        train_x, test_x, train_y, test_y = train_test_split(
            images, labels, test_size=self.n_test, stratify=labels, random_state=self.split_seed
        )
        return write_prepared(self, dest, train_x, train_y, test_x, test_y)


def write_prepared(
    spec: DatasetSpec,
    dest: Path,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
) -> dict:
    """Write a prepared folder; every file atomically, meta.json last (it marks completion)."""
    dest.mkdir(parents=True, exist_ok=True)
    arrays = {
        TRAIN_IMAGES: np.ascontiguousarray(train_images, dtype=np.uint8),
        TRAIN_TRUTH: np.ascontiguousarray(train_labels, dtype=np.int64),
        TEST_IMAGES: np.ascontiguousarray(test_images, dtype=np.uint8),
        TEST_LABELS: np.ascontiguousarray(test_labels, dtype=np.int64),
    }
    for name, array in arrays.items():
        # np.save appends ".npy" to a name without it, so write through an open handle.
        write_atomic(dest / name, lambda tmp, a=array: _save_npy(tmp, a))
    meta = {
        "dataset": spec.name,
        "num_classes": spec.num_classes,
        "classes": list(spec.classes),
        "image_shape": list(arrays[TRAIN_IMAGES].shape[1:]),
        "n_train": int(len(arrays[TRAIN_IMAGES])),
        "n_test": int(len(arrays[TEST_IMAGES])),
    }
    write_json_atomic(dest / META, meta)
    return meta


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


DATASETS: dict[str, DatasetSpec] = {
    "digits": DigitsSpec(
        name="digits",
        num_classes=10,
        classes=tuple(str(d) for d in range(10)),
        pixel_scale=16.0,
        mean=(0.3053,),
        std=(0.3760,),
        crop_padding=1,
        hflip=False,
        asym_map={7: 1, 1: 7, 3: 8, 8: 3, 5: 6, 6: 5},
    ),
}


def read_meta(prepared: Path, *, dataset: str | None = None) -> dict:
    """The prepared folder's meta.json; with `dataset`, refuse a folder prepared for another one."""
    path = Path(prepared) / META
    if not path.exists():
        raise FileNotFoundError(f"{path}: prepared data set missing; run the download stage first")
    meta = json.loads(path.read_text())
    if dataset is not None and meta["dataset"] != dataset:
        raise ValueError(f"{prepared}: prepared data set is {meta['dataset']!r} but data.dataset is {dataset!r}")
    return meta


def resolve_spec(dataset: str, meta: dict) -> DatasetSpec:
    """The spec a prepared folder was made with (a folder data set takes its classes from meta)."""
    return DATASETS[dataset]


def load_val_set(prepared: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The clean validation set, when the data set has one (folder data sets with a val list)."""
    return None


def load_train_images(prepared: Path) -> np.ndarray:
    return np.load(Path(prepared) / TRAIN_IMAGES, allow_pickle=False)


def load_test_set(prepared: Path) -> tuple[np.ndarray, np.ndarray]:
    prepared = Path(prepared)
    return (
        np.load(prepared / TEST_IMAGES, allow_pickle=False),
        np.load(prepared / TEST_LABELS, allow_pickle=False),
    )


def load_train_truth(prepared: Path) -> np.ndarray:
    """The true training labels. Only noise injection and evaluation may call this."""
    return np.load(Path(prepared) / TRAIN_TRUTH, allow_pickle=False)


class DeviceImages:
    """A whole image set kept on the device as uint8; batches are normalised (and augmented) there.

    Keeping uint8 on the device costs a quarter of float32 memory and removes per-step host
    transfers; augmentation is a batched gather, never per-image PIL.
    """

    def __init__(self, images: np.ndarray, spec: DatasetSpec, device: torch.device):
        self.images = torch.as_tensor(images, dtype=torch.uint8).to(device)
        self.spec = spec
        self.device = device
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(spec.mean, device=device).view(shape) * spec.pixel_scale
        self._std = torch.tensor(spec.std, device=device).view(shape) * spec.pixel_scale

    def __len__(self) -> int:
        return self.images.shape[0]

    def normalise(self, batch_u8: torch.Tensor) -> torch.Tensor:
        return (batch_u8.float() - self._mean) / self._std

    def plain(self, index: torch.Tensor) -> torch.Tensor:
        """The test transform: normalisation only."""
        return self.normalise(self.images[index])

    def augmented(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training transform: random translation (zero padding + crop), optional flip."""
        batch = self.images[index]
        batch = random_translate(batch, self.spec.crop_padding, generator)
        if self.spec.hflip:
            batch = random_hflip(batch, generator)
        return self.normalise(batch)


def random_translate(batch: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomCrop(size, padding): shift each image by up to `padding` pixels, zero-filled.

    Offsets are drawn on the CPU generator (reproducible across devices) and applied as one
    gather on the batch's device.
    """
    if padding == 0:
        return batch
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(batch.device)
    rows = torch.arange(h, device=batch.device)[None, :] + offsets[0][:, None]  # (n, h)
    cols = torch.arange(w, device=batch.device)[None, :] + offsets[1][:, None]  # (n, w)
    sample = torch.arange(n, device=batch.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[sample, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_hflip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(batch.shape[0], generator=generator) < 0.5).to(batch.device)
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)
