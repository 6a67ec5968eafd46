"""The loss terms of one step, each a function of logits and targets (shapes (B, C)), and the
record a step returns: Lx, Lu, the prior penalty (MixMatch, `Train_cifar.py`'s SemiLoss and
penalty) and warm-up's confidence penalty (`NegEntropy`)."""

from __future__ import annotations

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
class StepLosses:
    """One step's loss terms, 0-d tensors on the device (detached): Lx, Lu, the prior penalty and
    the total that was optimised. Warm-up reports its cross-entropy as `loss_x` and Lu = 0."""

    loss_x: torch.Tensor
    loss_u: torch.Tensor
    penalty: torch.Tensor
    loss: torch.Tensor

    @staticmethod
    def to_host(steps: list["StepLosses"], reduce=None) -> dict[str, list[float]]:
        """An epoch's steps gathered to the host at once (its only sync): a list per term.
        `reduce` maps the (steps, 4) tensor first (the mean over processes)."""
        names = ("loss_x", "loss_u", "penalty", "loss")
        if not steps:
            return {name: [] for name in names}
        values = torch.stack([torch.stack([getattr(s, name) for name in names]) for s in steps])
        if reduce is not None:
            values = reduce(values)
        return dict(zip(names, values.cpu().T.tolist()))
