"""A process's share of a step's global batch, as the loss terms weigh it (`method.losses.Share`,
`Spread`): what makes P processes' gradient one process's. None with one process: its step is the
single-device step, unchanged."""

from __future__ import annotations

import torch

from dividemix.cluster.group import Cluster
from dividemix.method.losses import Share, Spread


def share_of(cluster: Cluster, batch: torch.Tensor) -> Share | None:
    """This process's share of `batch` (the global batch's indices), None alone."""
    if not cluster.spread:
        return None
    return Share(real=cluster.real(len(batch)), total=len(batch), world=cluster.world)


def spread_of(cluster: Cluster, labeled: torch.Tensor, unlabeled: torch.Tensor) -> Spread | None:
    """A DivideMix step's shares of its labeled and unlabeled batches and the all-reduce with
    autograd its prior penalty sums over, None alone."""
    if not cluster.spread:
        return None
    return Spread(x=share_of(cluster, labeled), u=share_of(cluster, unlabeled), all_sum=cluster.all_sum)
