"""Batched training augmentations on uint8 tensors: random translation and horizontal flip.

The distributions of torchvision's RandomCrop(size, padding) and RandomHorizontalFlip, applied to
a whole batch at once on its device (airbench's way), never per image with PIL. Draws come from
the CPU generator given (reproducible across devices) and are queued to the device without a sync.
"""

from __future__ import annotations

import torch

from dividemix.device import host_to_device


def random_translate(batch: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomCrop(size, padding): shift each image by up to `padding` pixels, zero-filled.

    The same distribution as torchvision's RandomCrop(size, padding) on the uint8 image (fill 0,
    i.e. black, before normalisation; top and left offsets uniform in 0..2*padding). Offsets are
    drawn on the CPU generator (reproducible across devices) and applied as one gather on the
    batch's device.
    """
    if padding == 0:
        return batch
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (padding, padding, padding, padding))
    offsets = host_to_device(torch.randint(0, 2 * padding + 1, (2, n), generator=generator), batch.device)
    rows = torch.arange(h, device=batch.device)[None, :] + offsets[0][:, None]  # (n, h)
    cols = torch.arange(w, device=batch.device)[None, :] + offsets[1][:, None]  # (n, w)
    sample = torch.arange(n, device=batch.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[sample, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_hflip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomHorizontalFlip(p=0.5): each image mirrored left-right with probability 1/2."""
    flip = host_to_device(torch.rand(batch.shape[0], generator=generator) < 0.5, batch.device)
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)
