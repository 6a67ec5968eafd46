"""The views a DivideMix step trains on, one policy a module (train.augment).

The epoch loop calls `views_for(augment, strong_policy)` once and the returned function each step:
`(images, pair, x_index, u_index, draws) -> StepViews`. `pair(index, generator)` is the workspace's
two weak views of the same rows (`Workspace.train_pair`: the training transform, or the test
transform under ablation.augmentation false). A policy returns the views co-guessing and
co-refinement see (x1, x2, u1, u2) and, when they differ, MixMatch's inputs (`mix`). A new policy
touches this folder and the config, never the loop.

- `paper` (default): the reference's two weak views, guessed on and mixed.
- `weak_strong`: AugDesc-WS (Nishi et al., CVPR 2021): weak views guess, strong views are mixed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dividemix.images.views import paper


@dataclass(frozen=True)
class ViewDraws:
    """A step's random streams: `weak` the crops and flips of the reference's views (the stream
    the paper path always drew from), `strong` the strong views' own (never touched by `paper`)."""

    weak: torch.Generator
    strong: torch.Generator


@dataclass(frozen=True)
class StepViews:
    x1: torch.Tensor
    x2: torch.Tensor
    u1: torch.Tensor
    u2: torch.Tensor
    mix: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # None: the four above


POLICIES = ("paper", "weak_strong")


def views_for(augment: str, strong_policy: str) -> Callable[..., StepViews]:
    """The step's view function of train.augment (`strong_policy`: read by weak_strong only)."""
    if augment not in POLICIES:
        raise ValueError(f"train.augment {augment!r} unknown; allowed: {', '.join(POLICIES)}")
    if augment == "weak_strong":
        # imported here: torchvision's augmentations cost every training stage ~1.6 s and ~150 MB
        # at import, which only the runs that use them should pay
        from dividemix.images.views import weak_strong

        return functools.partial(weak_strong.views, policy=strong_policy)
    return paper.views
