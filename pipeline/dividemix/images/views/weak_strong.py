"""AugDesc-WS (Nishi et al., CVPR 2021; KentoNishi/Augmentation-for-LNL@908a22b, train_cifar.py
L84-118): co-guessing and co-refinement see two weak views (the reference's crop + flip), MixMatch
trains on two strong views (the weak transform, then a strong policy), as
`all_inputs = cat([inputs_x3, inputs_x4, inputs_u3, inputs_u4])`. Warm-up and the division's eval
pass are unchanged (shared/reference/selection.md, section 3).

The strong policies are torchvision's own: its policy tables and magnitude spaces
(`AutoAugment.policies`, `_augmentation_space`) and its operations (`autoaugment._apply_op`),
with the draws each class's `forward` makes, but one draw per image: torchvision's transforms draw
once per call, which on a batch gives every image the same operation. The draws are made on the
CPU generator for the whole batch at once (reproducible on every device); the images sharing an
operation and magnitude are transformed together on the batch's device, so no image makes a
round trip to the host and the launches grow with the distinct operations, not the images.

Departures: the weak views come from the reference's stream and the strong views from their own
(streams.STRONG), so the guesses see exactly the paper path's views; a resized crop (WebVision)
is rounded to uint8 before the policy (torchvision's operations need uint8 for posterize and
equalize); images whose full intensity is not 255 (the digits' 16) are scaled to 0..255 for the
policy and back.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as tv

from dividemix.device import host_to_device

POLICIES = ("autoaugment_cifar10", "autoaugment_imagenet", "autoaugment_svhn", "randaugment", "trivialaugment_wide")
_AUTOAUGMENT = {"autoaugment_cifar10": tv.AutoAugmentPolicy.CIFAR10, "autoaugment_imagenet": tv.AutoAugmentPolicy.IMAGENET,
                "autoaugment_svhn": tv.AutoAugmentPolicy.SVHN}
RAND_OPS, RAND_MAGNITUDE, BINS = 2, 9, 31  # RandAugment's and TrivialAugmentWide's defaults
FULL = 255


def views(images, pair, x_index, u_index, draws, *, policy: str):
    """Weak x1, x2, u1, u2 from `draws.weak` (the paper path's draws, in its order), strong views
    of the same rows from `draws.strong`; each row read once."""
    from dividemix.images.views import StepViews  # (the package imports this module)

    x_rows, u_rows = images.rows(x_index), images.rows(u_index)
    x1, x2 = images.augment(x_rows, draws.weak), images.augment(x_rows, draws.weak)
    u1, u2 = images.augment(u_rows, draws.weak), images.augment(u_rows, draws.weak)
    strong = tuple(strong_view(images, rows, draws.strong, policy) for rows in (x_rows, x_rows, u_rows, u_rows))
    return StepViews(x1, x2, u1, u2, mix=strong)


def strong_view(images, rows: torch.Tensor, generator: torch.Generator, policy: str) -> torch.Tensor:
    """The weak transform, then `policy` with its own draw per image, normalised."""
    batch = images.transformed(rows, generator)
    if len(batch) == 0:
        return images.normalise(batch)
    scale = float(images.spec.pixel_scale)
    if batch.dtype != torch.uint8 or scale != FULL:
        batch = (batch.float() * (FULL / scale)).round().clamp(0, FULL).to(torch.uint8)
    batch = apply_policy(batch, policy, generator)
    return images.normalise(batch if scale == FULL else batch.float() * (scale / FULL))


def apply_policy(batch: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """`policy` on a uint8 batch (n, C, H, W), each image its own operations (`draw_ops`)."""
    for stage in draw_ops(policy, batch.shape[0], batch.shape[-2:], generator):
        batch = _apply_stage(batch, stage)
    return batch


def draw_ops(policy: str, n: int, size, generator: torch.Generator) -> list[list[tuple[str, float] | None]]:
    """Per stage, each image's (operation, signed magnitude), or None where it is left as is.

    The draws of torchvision's `forward`s, made for n images at once: AutoAugment a sub-policy,
    each of its two operations applied with its probability, a random sign; RandAugment two
    uniform operations at magnitude 9 of 31 bins; TrivialAugmentWide one operation at a uniform bin.
    """
    if policy in _AUTOAUGMENT:
        table = tv.AutoAugment(_AUTOAUGMENT[policy]).policies
        space = tv.AutoAugment()._augmentation_space(10, tuple(size))
        chosen = torch.randint(len(table), (n,), generator=generator).tolist()
        probs = torch.rand(n, 2, generator=generator).tolist()
        signs = torch.randint(2, (n, 2), generator=generator).tolist()
        stages = []
        for s in range(2):
            stage = []
            for i in range(n):
                name, p, bin_ = table[chosen[i]][s]
                stage.append(_op(space, name, bin_, signs[i][s] == 0) if probs[i][s] <= p else None)
            stages.append(stage)
        return stages
    if policy == "randaugment":
        space = tv.RandAugment()._augmentation_space(BINS, tuple(size))
        names = list(space)
        picks = torch.randint(len(names), (RAND_OPS, n), generator=generator).tolist()
        signs = torch.randint(2, (RAND_OPS, n), generator=generator).tolist()
        return [[_op(space, names[picks[s][i]], RAND_MAGNITUDE, signs[s][i] == 1) for i in range(n)]
                for s in range(RAND_OPS)]
    if policy == "trivialaugment_wide":
        space = tv.TrivialAugmentWide()._augmentation_space(BINS)
        names = list(space)
        picks = torch.randint(len(names), (n,), generator=generator).tolist()
        bins = torch.randint(BINS, (n,), generator=generator).tolist()
        signs = torch.randint(2, (n,), generator=generator).tolist()
        return [[_op(space, names[picks[i]], bins[i], signs[i] == 1) for i in range(n)]]
    raise ValueError(f"train.strong_policy {policy!r} unknown; allowed: {', '.join(POLICIES)}")


def _op(space: dict, name: str, bin_: int | None, negate: bool) -> tuple[str, float] | None:
    """(name, magnitude) as torchvision computes it; None for its Identity."""
    if name == "Identity":
        return None
    magnitudes, signed = space[name]
    magnitude = float(magnitudes[bin_].item()) if bin_ is not None and magnitudes.ndim > 0 else 0.0
    return name, -magnitude if signed and negate else magnitude


def _apply_stage(batch: torch.Tensor, stage: list[tuple[str, float] | None]) -> torch.Tensor:
    """One operation per image: the images sharing one are transformed together, on their device."""
    groups: dict[tuple[str, float], list[int]] = {}
    for i, op in enumerate(stage):
        if op is not None:
            groups.setdefault(op, []).append(i)
    if not groups:
        return batch
    out = batch.clone()
    for (name, magnitude), members in groups.items():  # insertion order: first image first
        index = host_to_device(torch.tensor(members, dtype=torch.int64), batch.device)
        out[index] = tv._apply_op(batch[index], name, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)
    return out
