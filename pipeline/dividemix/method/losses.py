"""The loss terms of one step, each a function of logits and targets (shapes (B, C)), and the
record a step returns: Lx, Lu, the prior penalty (MixMatch, `Train_cifar.py`'s SemiLoss and
penalty) and warm-up's confidence penalty (`NegEntropy`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F


def labeled_loss(logits_x: torch.Tensor, targets_x: torch.Tensor) -> torch.Tensor:
    """Lx: soft cross-entropy, -mean(sum(log_softmax(logits) * target))."""
    return -torch.mean(torch.sum(F.log_softmax(logits_x, dim=1) * targets_x, dim=1))


def unlabeled_loss(logits_u: torch.Tensor, targets_u: torch.Tensor) -> torch.Tensor:
    """Lu: mean squared error between softmax and target, averaged over batch and classes."""
    if logits_u.shape[0] == 0:
        return logits_u.new_zeros(())
    return torch.mean((F.softmax(logits_u, dim=1) - targets_u) ** 2)


def prior_penalty(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """sum(prior * log(prior / mean softmax)) with a uniform prior: keeps predictions spread over classes."""
    prior = torch.full((num_classes,), 1.0 / num_classes, device=logits.device)
    pred_mean = F.softmax(logits, dim=1).mean(0)
    return torch.sum(prior * torch.log(prior / pred_mean))


def confidence_penalty(logits: torch.Tensor) -> torch.Tensor:
    """Negative entropy mean(sum(p log p)), the reference's `NegEntropy` for warm-up under asym noise."""
    # softmax * log_softmax, not the reference's probs.log() * probs: the same value, but no
    # NaN (0 * -inf) when a float32 probability rounds to 0.
    return torch.mean(torch.sum(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1), dim=1))


@dataclass(frozen=True)
class Share:
    """One process's part of one set of a step's global batch (its labeled or unlabeled samples).

    `real` of the `total` samples are this process's (a set smaller than the processes is
    repeated so that every process steps on something: a repeat is not real and weighs 0).
    """

    real: int
    total: int
    world: int

    @property
    def weight(self) -> float:
        """The factor on a mean over this share that makes the processes' gradients, averaged by
        DDP (a sum over P divided by P), the gradient of the mean over the global batch."""
        return self.world * self.real / self.total if self.total else 0.0


@dataclass(frozen=True)
class Spread:
    """A step's batch as one process's share of a global batch: the labeled and unlabeled shares
    and the sum over processes with autograd (an all-reduce whose backward all-reduces too), by
    which the prior penalty is computed on the global batch's mean prediction."""

    x: Share
    u: Share
    all_sum: Callable[[torch.Tensor], torch.Tensor]


def spread_prior_penalty(logits: torch.Tensor, n_x: int, spread: Spread, num_classes: int) -> torch.Tensor:
    """`prior_penalty` on the mean softmax over every process's real rows (the first `n_x` rows of
    `logits` are labeled, the rest unlabeled): the same value in every process. The penalty is
    convex in that mean, so the average of per-share penalties (plain DDP) is larger than the
    global batch's and grows as the shares shrink. Each process adds it with weight 1: the
    all-reduce's backward sums the P equal gradients and DDP's average divides by P."""
    probs = F.softmax(logits, dim=1)
    n_u = logits.shape[0] - n_x
    sums = probs[:n_x].sum(0) * float(spread.x.real > 0) + probs[n_x:].sum(0) * float(spread.u.real > 0)
    rows = 2 * spread.x.total + (2 * spread.u.total if n_u else 0)  # two views of each sample
    prior = torch.full((num_classes,), 1.0 / num_classes, device=logits.device)
    return torch.sum(prior * torch.log(prior / (spread.all_sum(sums) / rows)))


def mixmatch_losses(logits: torch.Tensor, targets: torch.Tensor, n_x: int, lambda_u: float | None,
                    num_classes: int, spread: Spread | None = None) -> "StepLosses":
    """A MixMatch step's terms (with gradients) on its mixed rows: Lx on the first `n_x`, Lu on the
    rest, the prior penalty on all. `lambda_u` None is the labeled-only step (Clothing1M,
    WebVision: every row is labeled, loss = Lx + penalty, Lu = 0). Under `spread` each term is a
    process's part of the global batch's (its mean weighted by its share), so that the gradient
    DDP applies is the one a single process would apply to the whole batch."""
    if lambda_u is None:
        loss_x, loss_u = labeled_loss(logits, targets), logits.new_zeros(())
    else:
        loss_x, loss_u = labeled_loss(logits[:n_x], targets[:n_x]), unlabeled_loss(logits[n_x:], targets[n_x:])
    if spread is None:
        penalty = prior_penalty(logits, num_classes)
    else:
        loss_x, loss_u = loss_x * spread.x.weight, loss_u * spread.u.weight
        penalty = spread_prior_penalty(logits, n_x, spread, num_classes)
    loss = loss_x + penalty if lambda_u is None else loss_x + lambda_u * loss_u + penalty
    return StepLosses(loss_x, loss_u, penalty, loss)


@dataclass(frozen=True)
class StepLosses:
    """One step's loss terms, 0-d tensors on the device (detached): Lx, Lu, the prior penalty and
    the total that was optimised. Warm-up reports its cross-entropy as `loss_x` and Lu = 0."""

    loss_x: torch.Tensor
    loss_u: torch.Tensor
    penalty: torch.Tensor
    loss: torch.Tensor

    def detach(self) -> "StepLosses":
        return StepLosses(self.loss_x.detach(), self.loss_u.detach(), self.penalty.detach(), self.loss.detach())

    @staticmethod
    def to_host(steps: list["StepLosses"], reduce=None) -> dict[str, list[float]]:
        """An epoch's steps gathered to the host at once (its only sync): a list per term.
        `reduce` maps the (steps, 4) tensor first (the mean over processes: under several, each
        term is a process's weighted part, so that the mean is the global batch's term)."""
        names = ("loss_x", "loss_u", "penalty", "loss")
        if not steps:
            return {name: [] for name in names}
        values = torch.stack([torch.stack([getattr(s, name) for name in names]) for s in steps])
        if reduce is not None:
            values = reduce(values)
        return dict(zip(names, values.cpu().T.tolist()))
