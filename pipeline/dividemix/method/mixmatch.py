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

from dividemix.device import host_to_device, logits_of
from dividemix.method.losses import Spread, StepLosses, mixmatch_losses

PROTOCOLS = ("cifar", "clothing1m", "webvision")
# The protocols whose step trains on the first 2B mixed samples only, loss = Lx + prior penalty
# (Train_clothing1M.py and Train_webvision.py: `mixed_input = l * input_a[:batch_size*2] + ...`).
LABELED_MIX_ONLY = ("clothing1m", "webvision")


def sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    """p^(1/T), renormalised over classes (B, C).

    Computed as softmax(log(p) / T), the same value, because p ** (1/T) underflows to 0/0 for
    small T (the reference's form).
    """
    return F.softmax(torch.log(p) / T, dim=1)


@torch.no_grad()
def co_guess(
    net: nn.Module, peer: nn.Module | None, u1: torch.Tensor, u2: torch.Tensor, T: float, *, amp: bool = False
) -> torch.Tensor:
    """Targets for unlabeled samples: mean softmax of both networks on both augmentations, sharpened.

    `peer=None` is the ablation without co-guessing (ablation.co_guessing false): the mean of the
    trained network's two softmaxes alone, sharpened.
    """
    if peer is None:
        pu = (F.softmax(logits_of(net, u1, amp=amp), dim=1) + F.softmax(logits_of(net, u2, amp=amp), dim=1)) / 2
        return sharpen(pu, T)
    pu = (
        F.softmax(logits_of(net, u1, amp=amp), dim=1)
        + F.softmax(logits_of(net, u2, amp=amp), dim=1)
        + F.softmax(logits_of(peer, u1, amp=amp), dim=1)
        + F.softmax(logits_of(peer, u2, amp=amp), dim=1)
    ) / 4
    return sharpen(pu, T)


@torch.no_grad()
def co_refine(
    net: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor,
    y_onehot: torch.Tensor,
    w: torch.Tensor,
    T: float,
    *,
    amp: bool = False,
) -> torch.Tensor:
    """Targets for labeled samples: w * onehot(y) + (1 - w) * net's mean prediction, sharpened.

    `w` (B, 1) is the clean probability from the peer's division.
    """
    px = (F.softmax(logits_of(net, x1, amp=amp), dim=1) + F.softmax(logits_of(net, x2, amp=amp), dim=1)) / 2
    px = w * y_onehot + (1 - w) * px
    return sharpen(px, T)


def mixup_coefficient(alpha: float, rng: np.random.Generator) -> float:
    """l ~ Beta(alpha, alpha), l = max(l, 1 - l): the mix stays closer to the first input."""
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def mix(
    inputs: torch.Tensor, targets: torch.Tensor, lam: float, generator: torch.Generator, *, keep: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixMatch: one random permutation over all samples (labeled and unlabeled mix with each other).

    `keep` returns only the first `keep` mixed samples, still mixed with partners drawn from all
    of them (the Clothing1M step keeps the 2B labeled ones: `l * input_a[:batch_size*2] +
    (1 - l) * input_b[:batch_size*2]`, where `input_b` may be labeled or unlabeled).
    The permutation is drawn on the CPU generator and queued to the device without a host sync.
    """
    perm = host_to_device(torch.randperm(inputs.shape[0], generator=generator), inputs.device)
    if keep is not None:
        inputs_a, targets_a, perm = inputs[:keep], targets[:keep], perm[:keep]
    else:
        inputs_a, targets_a = inputs, targets
    mixed_inputs = lam * inputs_a + (1 - lam) * inputs[perm]
    mixed_targets = lam * targets_a + (1 - lam) * targets[perm]
    return mixed_inputs, mixed_targets


def ramp_weight(lambda_u: float, progress: float, warmup_epochs: int, rampup_epochs: int) -> float:
    """lambda_u * clip((epoch + step / num_iter - warm_up) / rampup, 0, 1); `progress` = epoch + step/num_iter."""
    return lambda_u * float(np.clip((progress - warmup_epochs) / rampup_epochs, 0.0, 1.0))


@dataclass(frozen=True)
class StepBatch:
    """One step's inputs: two augmentations of B labeled and B' unlabeled samples (B' may be 0)."""

    x1: torch.Tensor
    x2: torch.Tensor
    y: torch.Tensor  # noisy labels (B,)
    w: torch.Tensor  # clean probabilities (B,)
    u1: torch.Tensor
    u2: torch.Tensor
    spread: Spread | None = None  # this process's share of a global batch (None: one process, the whole)
    # MixMatch's inputs when they are not the guessed views (x1, x2, u1, u2): train.augment
    # weak_strong's strong views (images.views); None: the four above, the reference's.
    mix: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None


@dataclass(frozen=True)
class StepOptions:
    """What stays fixed over an epoch's steps: the hyper-parameters and switches of `train_step`.

    `protocol` "cifar" is `Train_cifar.py`'s step: all 4B mixed samples are trained on, loss =
    Lx + lambda_u * Lu + penalty. "clothing1m" and "webvision" are `Train_clothing1M.py`'s and
    `Train_webvision.py`'s step (the same):
    the guesses are made as usual, but only the first 2B mixed samples (labeled samples mixed
    with partners from all 4B) are forwarded, and loss = Lx + penalty (Lu is not computed: 0).
    Ablations (the paper's Table 5): `label_refinement=False` takes the noisy one-hot labels as
    the labeled targets; `co_guessing=False` guesses with the trained network alone. `amp` runs
    the forward passes under bf16 autocast; losses are computed in float32.
    """

    num_classes: int
    T: float
    alpha: float
    protocol: str = "cifar"
    label_refinement: bool = True
    co_guessing: bool = True
    amp: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"train.protocol {self.protocol!r} unknown; allowed: {', '.join(PROTOCOLS)}")


@dataclass(frozen=True)
class MixDraws:
    """MixMatch's two random streams: `beta` draws lambda ~ Beta(alpha, alpha), `permutation` the
    mixing partners (a CPU generator: the same partners on every device)."""

    beta: np.random.Generator
    permutation: torch.Generator


def train_step(
    net: nn.Module,
    peer: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: StepBatch,
    *,
    lambda_u: float,
    options: StepOptions,
    draws: MixDraws,
) -> StepLosses:
    """One SGD step of `net` with `peer` (`options`: the protocol, ablations and precision).

    As in the official code `net` stays in train mode during the no-grad guessing passes (its
    BatchNorm statistics move) and `peer` is in eval mode. An empty unlabeled batch (everything
    was judged clean) is allowed: MixMatch then runs over the 2B labeled samples and Lu = 0.
    Under the ablation without label refinement the two no-grad passes of `net` on the labeled
    batch are skipped (co-refinement with w = 1: sharpen(onehot) = onehot).
    """
    peer.eval()  # the peer only guesses: its BatchNorm statistics must not move
    amp, T = options.amp, options.T
    # Under data parallel `net` is the DDP wrapper: the no-grad guessing passes go through the
    # module inside (no collective: they never wait for the other processes), the one pass with
    # gradients through the wrapper, whose backward averages the gradients over the processes.
    guesser = getattr(net, "module", net)
    b = batch.x1.shape[0]
    y_onehot = F.one_hot(batch.y, options.num_classes).float()
    w = batch.w.view(-1, 1).float()
    has_unlabeled = batch.u1.shape[0] > 0

    # Co-guessing before co-refinement, as the official code: `net` is in train mode during both,
    # so the order of its passes (u1, u2, then x1, x2) decides its BatchNorm running statistics.
    if has_unlabeled:
        targets_u = co_guess(guesser, peer if options.co_guessing else None, batch.u1, batch.u2, T, amp=amp)
    if options.label_refinement:
        targets_x = co_refine(guesser, batch.x1, batch.x2, y_onehot, w, T, amp=amp)
    else:
        targets_x = y_onehot
    mixed = list(batch.mix) if batch.mix is not None else [batch.x1, batch.x2, batch.u1, batch.u2]
    if has_unlabeled:
        inputs = torch.cat(mixed)
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    else:
        inputs = torch.cat(mixed[:2])
        targets = torch.cat([targets_x, targets_x])

    lam = mixup_coefficient(options.alpha, draws.beta)
    # Under several processes each mixes its own share (the partners are per process: a named
    # departure, docs/distributed.md); the loss terms are weighted so that DDP applies the global
    # batch's gradient (`mixmatch_losses`).
    labeled_only = options.protocol in LABELED_MIX_ONLY
    mixed_inputs, mixed_targets = mix(inputs, targets, lam, draws.permutation, keep=2 * b if labeled_only else None)
    logits = logits_of(net, mixed_inputs, amp=amp)
    losses = mixmatch_losses(logits, mixed_targets, 2 * b, None if labeled_only else lambda_u, options.num_classes,
                             batch.spread)
    optimizer.zero_grad(set_to_none=True)
    losses.loss.backward()
    optimizer.step()
    return losses.detach()
