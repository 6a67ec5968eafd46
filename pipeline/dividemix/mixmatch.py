"""One DivideMix training step: co-guessing, co-refinement, sharpening, MixMatch, losses.

Each function is one step of the paper (Algorithm 1) and of the official `train()` in
`Train_cifar.py`; shapes are given as (B, C) for B samples and C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    """p^(1/T), renormalised over classes (B, C).

    Computed as softmax(log(p) / T), the same value, because p ** (1/T) underflows to 0/0 for
    small T (the reference's form).
    """
    return F.softmax(torch.log(p) / T, dim=1)


@torch.no_grad()
def co_guess(net: nn.Module, peer: nn.Module, u1: torch.Tensor, u2: torch.Tensor, T: float) -> torch.Tensor:
    """Targets for unlabeled samples: mean softmax of both networks on both augmentations, sharpened."""
    pu = (
        F.softmax(net(u1), dim=1)
        + F.softmax(net(u2), dim=1)
        + F.softmax(peer(u1), dim=1)
        + F.softmax(peer(u2), dim=1)
    ) / 4
    return sharpen(pu, T)


@torch.no_grad()
def co_refine(
    net: nn.Module, x1: torch.Tensor, x2: torch.Tensor, y_onehot: torch.Tensor, w: torch.Tensor, T: float
) -> torch.Tensor:
    """Targets for labeled samples: w * onehot(y) + (1 - w) * net's mean prediction, sharpened.

    `w` (B, 1) is the clean probability from the peer's division.
    """
    px = (F.softmax(net(x1), dim=1) + F.softmax(net(x2), dim=1)) / 2
    px = w * y_onehot + (1 - w) * px
    return sharpen(px, T)


def mixup_coefficient(alpha: float, rng: np.random.Generator) -> float:
    """l ~ Beta(alpha, alpha), l = max(l, 1 - l): the mix stays closer to the first input."""
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def mix(
    inputs: torch.Tensor, targets: torch.Tensor, lam: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixMatch: one random permutation over all samples (labeled and unlabeled mix with each other)."""
    perm = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
    mixed_inputs = lam * inputs + (1 - lam) * inputs[perm]
    mixed_targets = lam * targets + (1 - lam) * targets[perm]
    return mixed_inputs, mixed_targets


def labeled_loss(logits_x: torch.Tensor, targets_x: torch.Tensor) -> torch.Tensor:
    """Lx: soft cross-entropy, -mean(sum(log_softmax(logits) * target))."""
    return -torch.mean(torch.sum(F.log_softmax(logits_x, dim=1) * targets_x, dim=1))


def unlabeled_loss(logits_u: torch.Tensor, targets_u: torch.Tensor) -> torch.Tensor:
    """Lu: mean squared error between softmax and target, averaged over batch and classes."""
    if logits_u.shape[0] == 0:
        return logits_u.new_zeros(())
    return torch.mean((F.softmax(logits_u, dim=1) - targets_u) ** 2)


def ramp_weight(lambda_u: float, progress: float, warmup_epochs: int, rampup_epochs: int) -> float:
    """lambda_u * clip((epoch + step / num_iter - warm_up) / rampup, 0, 1); `progress` = epoch + step/num_iter."""
    return lambda_u * float(np.clip((progress - warmup_epochs) / rampup_epochs, 0.0, 1.0))


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
class StepBatch:
    """One step's inputs: two augmentations of B labeled and B' unlabeled samples (B' may be 0)."""

    x1: torch.Tensor
    x2: torch.Tensor
    y: torch.Tensor  # noisy labels (B,)
    w: torch.Tensor  # clean probabilities (B,)
    u1: torch.Tensor
    u2: torch.Tensor


def train_step(
    net: nn.Module,
    peer: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: StepBatch,
    *,
    num_classes: int,
    T: float,
    alpha: float,
    lambda_u: float,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> torch.Tensor:
    """One SGD step of `net` with `peer`; returns the detached (loss_x, loss_u, penalty, loss) tensor.

    As in the official code `net` stays in train mode during the no-grad guessing passes (its
    BatchNorm statistics move) and `peer` is in eval mode. An empty unlabeled batch (everything
    was judged clean) is allowed: MixMatch then runs over the 2B labeled samples and Lu = 0.
    """
    peer.eval()  # the peer only guesses: its BatchNorm statistics must not move
    b = batch.x1.shape[0]
    y_onehot = F.one_hot(batch.y, num_classes).float()
    w = batch.w.view(-1, 1).float()
    has_unlabeled = batch.u1.shape[0] > 0

    targets_x = co_refine(net, batch.x1, batch.x2, y_onehot, w, T)
    if has_unlabeled:
        targets_u = co_guess(net, peer, batch.u1, batch.u2, T)
        inputs = torch.cat([batch.x1, batch.x2, batch.u1, batch.u2])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    else:
        inputs = torch.cat([batch.x1, batch.x2])
        targets = torch.cat([targets_x, targets_x])

    lam = mixup_coefficient(alpha, rng)
    mixed_inputs, mixed_targets = mix(inputs, targets, lam, generator)
    logits = net(mixed_inputs)
    loss_x = labeled_loss(logits[: 2 * b], mixed_targets[: 2 * b])
    loss_u = unlabeled_loss(logits[2 * b :], mixed_targets[2 * b :])
    penalty = prior_penalty(logits, num_classes)
    loss = loss_x + lambda_u * loss_u + penalty

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return torch.stack([loss_x, loss_u, penalty, loss]).detach()


def warmup_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    conf_penalty: bool,
) -> torch.Tensor:
    """Plain cross-entropy on noisy labels (+ negative entropy if `conf_penalty`); returns (ce, penalty, loss)."""
    logits = net(images)
    ce = F.cross_entropy(logits, labels)
    penalty = confidence_penalty(logits) if conf_penalty else ce.new_zeros(())
    loss = ce + penalty
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return torch.stack([ce, penalty, loss]).detach()
