"""Eval-mode passes over a whole image set: the division's losses, test and validation accuracy, export."""

from __future__ import annotations

import torch
from torch import nn

from dividemix.device import autocast
from dividemix.images.batches import ImageBatches

EVAL_BATCH = 1024  # default batch of the eval passes (train.eval_batch_size): no augmentation, no grad


@torch.no_grad()
def eval_logits(
    net: nn.Module,
    images: ImageBatches,
    *,
    index: torch.Tensor | None = None,
    batch_size: int | None = None,
    amp: bool = False,
) -> torch.Tensor:
    """Logits of every image (or of `index`, a CPU tensor, in that order): eval mode, the test
    transform. Batches of `batch_size` (default EVAL_BATCH); with `amp` under bf16 autocast.
    (N, C) float32 on the images' device.
    """
    net.eval()
    size = batch_size or EVAL_BATCH
    n = len(images) if index is None else len(index)
    logits = []
    for start in range(0, n, size):
        if index is None:
            chunk = torch.arange(start, min(start + size, n))
        else:
            chunk = index[start : start + size]
        with autocast(images.device, amp):
            logits.append(net(images.plain(chunk)).float())
    return torch.cat(logits)
