"""Image sets as the training loop sees them: uint8 rows in, normalised (augmented) batches out.

Two kinds share one interface and the same transforms, so a run gives the same numbers with
either: `DeviceImages` keeps the whole set on the device (digits, CIFAR: the fast path), and
`streamed_images.StreamedImages` reads each batch's rows from the prepared store on disk (folder
data sets at any size). Both crop, flip and normalise on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from dividemix.datasets.spec import DatasetSpec
from dividemix.images.transforms import center_crop, random_crop, random_hflip, random_resized_crop, random_translate


class ImageBatches:
    """The transforms of a data set's spec over `rows(index)` (uint8 (n, C, H, W) on the device).

    With `channels_last` every batch is in the channels-last memory format (the same values;
    faster convolutions on tensor cores and on the CPU).
    """

    def __init__(self, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False):
        self.spec = spec
        self.device = torch.device(device)
        self.channels_last = channels_last
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(spec.mean, device=self.device).view(shape) * spec.pixel_scale
        self._std = torch.tensor(spec.std, device=self.device).view(shape) * spec.pixel_scale

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        batch = (batch.float() - self._mean) / self._std
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def plain(self, index: torch.Tensor) -> torch.Tensor:
        """The test transform: the centre crop (folder data sets), normalisation."""
        batch = self.rows(index)
        if self.spec.crop_size:
            batch = center_crop(batch, self.spec.crop_size)
        return self.normalise(batch)

    def augmented(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training transform: the spec's crop (translate, random or random-resized), optional flip."""
        batch = self.rows(index)
        if self.spec.train_crop == "translate":
            batch = random_translate(batch, self.spec.crop_padding, generator)
        elif self.spec.train_crop == "random":
            batch = random_crop(batch, self.spec.crop_size, generator)
        else:
            batch = random_resized_crop(batch, self.spec.crop_size, generator)
        if self.spec.hflip:
            batch = random_hflip(batch, generator)
        return self.normalise(batch)


class DeviceImages(ImageBatches):
    """A whole image set kept on the device as uint8; batches are one gather.

    Keeping uint8 on the device costs a quarter of float32 memory and removes per-step host
    transfers; augmentation is a batched gather, never per-image PIL.
    """

    def __init__(self, images: np.ndarray, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False):
        super().__init__(spec, device, channels_last=channels_last)
        self.images = torch.as_tensor(images, dtype=torch.uint8).to(self.device)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[index]
