"""Which samples an epoch visits, and in what order: shuffled batches, the endless unlabeled
iterator, and the Clothing1M protocol's class-balanced sample."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from dividemix.device import host_to_device
from dividemix.training.streams import EpochStreams
from dividemix.training.workspace import Workspace


def balanced_sample(labels: np.ndarray, num_samples: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A class-balanced sample of the training set, as the reference's Clothing1M loader ('all').

    Walk a random permutation and take a sample while its (noisy) class has fewer than
    num_samples / num_classes taken and fewer than num_samples are taken in all. Returned sorted
    (sample_index order; the loops shuffle it with their own generators).
    """
    order = rng.permutation(len(labels))
    shuffled = np.asarray(labels)[order]
    # rank of each position among the earlier positions of its class (the class's count so far)
    by_class = np.argsort(shuffled, kind="stable")
    sorted_labels = shuffled[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[by_class] = np.arange(len(order)) - starts
    accepted = rank < num_samples / num_classes  # the reference: class_num[label] < num_samples / 14
    taken = accepted & (np.cumsum(accepted) <= num_samples)
    return np.sort(order[taken]).astype(np.int64)


def epoch_subset(ws: Workspace, epoch: int, net_id: int, num_samples: int) -> np.ndarray | None:
    """The Clothing1M protocol's class-balanced sample for (epoch, network); None under "cifar"."""
    train = ws.config.train
    if train.protocol != "clothing1m":
        return None
    labels = ws.noisy_labels.cpu().numpy()
    return balanced_sample(labels, num_samples, ws.num_classes, EpochStreams(train.seed, epoch, net_id).subset())


def batches(index: torch.Tensor, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A shuffled pass over `index` in chunks of `size` (the last one may be smaller, no drop_last)."""
    order = index[host_to_device(torch.randperm(len(index), generator=generator), index.device)]
    yield from torch.split(order, size)


def endless_batches(index: torch.Tensor, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The unlabeled iterator: reshuffled and restarted whenever exhausted (reference behaviour)."""
    while True:
        yield from batches(index, size, generator)

