"""Batched image transforms on uint8 tensors: translation, crops, resized crops, flips.

The distributions of torchvision's RandomCrop(size, padding), RandomCrop(size), CenterCrop,
RandomResizedCrop and RandomHorizontalFlip, applied to a whole batch at once on its device
(airbench's way), never per image with PIL. Draws come from the CPU generator given
(reproducible across devices) and are queued to the device without a sync.
"""

from __future__ import annotations

import math

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
    return _gather_windows(padded, offsets[0], offsets[1], h, w)


def random_hflip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomHorizontalFlip(p=0.5): each image mirrored left-right with probability 1/2."""
    flip = host_to_device(torch.rand(batch.shape[0], generator=generator) < 0.5, batch.device)
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)


def _gather_windows(batch: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The height x width window of each image at top-left corner (top[i], left[i]): one gather."""
    n = batch.shape[0]
    rows = torch.arange(height, device=batch.device)[None, :] + top[:, None]  # (n, height)
    cols = torch.arange(width, device=batch.device)[None, :] + left[:, None]  # (n, width)
    sample = torch.arange(n, device=batch.device)[:, None, None]
    cropped = batch.permute(0, 2, 3, 1)[sample, rows[:, :, None], cols[:, None, :]]  # (n, height, width, c)
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_crop(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomCrop(size) without padding: a size x size window at a uniform position."""
    n, _, h, w = batch.shape
    if (h, w) == (size, size):
        return batch
    corner = torch.stack([torch.randint(0, h - size + 1, (n,), generator=generator),
                          torch.randint(0, w - size + 1, (n,), generator=generator)])
    corner = host_to_device(corner, batch.device)
    return _gather_windows(batch, corner[0], corner[1], size, size)


def crop_at(batch: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """The size x size window of each image at its own corner (top[i], left[i]): one gather."""
    return _gather_windows(batch, top, left, size, size)


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    """CenterCrop(size): torchvision's offsets, int(round((side - size) / 2))."""
    h, w = batch.shape[-2:]
    if (h, w) == (size, size):
        return batch
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return batch[..., top : top + size, left : left + size]


SCALE = (0.08, 1.0)  # RandomResizedCrop's defaults (torchvision), as Train_webvision uses them
RATIO = (3 / 4, 4 / 3)
TRIES = 10


def resized_crop_boxes(n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """RandomResizedCrop.get_params for n images at once: (n, 4) boxes (top, left, height, width).

    torchvision's rule: up to 10 tries of an area fraction in SCALE and a log-uniform aspect ratio
    in RATIO, the first crop that fits wins, at a uniform position; none fits: the centre crop of
    the clamped ratio (for a square image with these ratios: the whole image). All tries are drawn
    up front (10 per image), so the draws per batch do not depend on which try succeeds.
    """
    area = h * w * (SCALE[0] + (SCALE[1] - SCALE[0]) * torch.rand(n, TRIES, generator=generator, dtype=torch.float64))
    log_ratio = math.log(RATIO[0]) + (math.log(RATIO[1]) - math.log(RATIO[0])) * torch.rand(
        n, TRIES, generator=generator, dtype=torch.float64)
    aspect = torch.exp(log_ratio)
    cw = torch.round(torch.sqrt(area * aspect)).long()
    ch = torch.round(torch.sqrt(area / aspect)).long()
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    position = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    boxes = torch.empty(n, 4, dtype=torch.long)
    for i in range(n):  # n is a batch (tens): a plain loop over already-drawn numbers
        k = int(first[i])
        if k < 0:  # torchvision's fallback: the centre crop of the clamped ratio
            side_h, side_w = _fallback(h, w)
            top, left = (h - side_h) // 2, (w - side_w) // 2
        else:  # a uniform position, as torch.randint(0, side - crop + 1)
            side_h, side_w = int(ch[i, k]), int(cw[i, k])
            top, left = int(position[i, 0] * (h - side_h + 1)), int(position[i, 1] * (w - side_w + 1))
        boxes[i] = torch.tensor([top, left, side_h, side_w])
    return boxes


def _fallback(h: int, w: int) -> tuple[int, int]:
    ratio = w / h
    if ratio < RATIO[0]:
        return int(round(w / RATIO[0])), w
    if ratio > RATIO[1]:
        return h, int(round(h * RATIO[1]))
    return h, w


def random_resized_crop(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Batched RandomResizedCrop(size): each image's box (`resized_crop_boxes`) resampled to size x size.

    Bilinear resampling of every box in one `grid_sample` (float output, values 0..255). Departure:
    no antialiasing (torchvision's PIL path antialiases); from a 320-pixel store to 299 a box is
    shrunk by at most 1.07x, where antialiasing changes little (docs/data.md).
    """
    n, _, h, w = batch.shape
    boxes = host_to_device(resized_crop_boxes(n, h, w, generator).double(), batch.device)
    top, left, bh, bw = boxes.unbind(1)
    # affine_grid maps output [-1, 1] to input coordinates (align_corners=False): the box's centre and half extent
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=batch.device)
    theta[:, 0, 0] = (bw / w).float()
    theta[:, 0, 2] = ((2 * left + bw) / w - 1).float()
    theta[:, 1, 1] = (bh / h).float()
    theta[:, 1, 2] = ((2 * top + bh) / h - 1).float()
    grid = torch.nn.functional.affine_grid(theta, [n, batch.shape[1], size, size], align_corners=False)
    return torch.nn.functional.grid_sample(batch.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
