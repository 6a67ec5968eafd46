"""A whole image set on the device as uint8: batches are normalised (and augmented) there."""

from __future__ import annotations

import numpy as np
import torch

from dividemix.datasets.spec import DatasetSpec
from dividemix.transforms import random_hflip, random_translate


class DeviceImages:
    """A whole image set kept on the device as uint8; batches are normalised (and augmented) there.

    Keeping uint8 on the device costs a quarter of float32 memory and removes per-step host
    transfers; augmentation is a batched gather, never per-image PIL. With `channels_last` every
    batch it returns is in the channels-last memory format (the same values; faster convolutions
    on tensor cores).
    """

    def __init__(self, images: np.ndarray, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False):
        self.images = torch.as_tensor(images, dtype=torch.uint8).to(device)
        self.spec = spec
        self.device = device
        self.channels_last = channels_last
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(spec.mean, device=device).view(shape) * spec.pixel_scale
        self._std = torch.tensor(spec.std, device=device).view(shape) * spec.pixel_scale

    def __len__(self) -> int:
        return self.images.shape[0]

    def normalise(self, batch_u8: torch.Tensor) -> torch.Tensor:
        batch = (batch_u8.float() - self._mean) / self._std
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

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
