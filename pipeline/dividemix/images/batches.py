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
from dividemix.device import host_to_device
from dividemix.images.transforms import (
    center_crop,
    crop_at,
    random_crop,
    random_hflip,
    random_resized_crop,
    random_translate,
)


class ImageBatches:
    """The transforms of a data set's spec over `rows(index)` (uint8 (n, C, H, W) on the device).

    With `channels_last` every batch is in the channels-last memory format (the same values;
    faster convolutions on tensor cores and on the CPU). `corners` (n, 2), for a stored data set:
    each row's corner of the reference's evaluation crop (`datasets.image_decode.eval_corner`);
    without them the evaluation crop is the centre of the stored image.
    """

    def __init__(self, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False,
                 corners: np.ndarray | None = None):
        self.spec = spec
        self.device = torch.device(device)
        self.channels_last = channels_last
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(spec.mean, device=self.device).view(shape) * spec.pixel_scale
        self._std = torch.tensor(spec.std, device=self.device).view(shape) * spec.pixel_scale
        self._corners = None if corners is None else torch.as_tensor(corners, dtype=torch.int64)  # host: indexed by CPU rows

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        batch = (batch.float() - self._mean) / self._std
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def plain(self, index: torch.Tensor) -> torch.Tensor:
        """The test transform: the evaluation crop (stored data sets), normalisation."""
        batch = self.rows(index)
        if self.spec.crop_size and self._corners is not None:
            corners = host_to_device(self._corners[index.cpu()], batch.device)
            batch = crop_at(batch, corners[:, 0], corners[:, 1], self.spec.crop_size)
        elif self.spec.crop_size:
            batch = center_crop(batch, self.spec.crop_size)
        return self.normalise(batch)

    def augmented(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training transform: the spec's crop (translate, random or random-resized), optional flip."""
        return self.augment(self.rows(index), generator)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training transform of rows already read (a step reads its rows once for both views)."""
        return self.normalise(self.transformed(batch, generator))

    def transformed(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """`augment` before normalisation (uint8, or float 0..scale after a resized crop): the
        strong views (`images.views.weak_strong`) apply their policy here."""
        if len(batch) == 0:  # an empty unlabeled batch (every sample judged clean): nothing to draw
            size = self.spec.crop_size or batch.shape[-1]
            return batch.new_zeros((0, batch.shape[1], size, size))
        if self.spec.train_crop == "translate":
            batch = random_translate(batch, self.spec.crop_padding, generator)
        elif self.spec.train_crop == "random":
            batch = random_crop(batch, self.spec.crop_size, generator)
        else:
            batch = random_resized_crop(batch, self.spec.crop_size, generator)
        if self.spec.hflip:
            batch = random_hflip(batch, generator)
        return batch


class DeviceImages(ImageBatches):
    """A whole image set kept on the device as uint8; batches are one gather.

    Keeping uint8 on the device costs a quarter of float32 memory and removes per-step host
    transfers; augmentation is a batched gather, never per-image PIL.
    """

    def __init__(self, images: np.ndarray, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False,
                 corners: np.ndarray | None = None):
        super().__init__(spec, device, channels_last=channels_last, corners=corners)
        self.images = torch.as_tensor(images, dtype=torch.uint8).to(self.device)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[host_to_device(index, self.device)]
