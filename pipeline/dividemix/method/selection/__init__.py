"""Sample selection: how a network's eval pass divides the training set, one rule a module.

The loop calls `select(rule, inputs)` and gets a `codivide.Division`: `labeled` (the samples
MixMatch treats as labeled), `clean_prob` (the weight co-refinement gives the given label) and the
rule's input per sample (`loss_norm`). A rule is a module with `select(SelectionInputs) ->
Division`, registered in `RULES` and named in config's `train.selection`: a new rule touches this
folder and the config, never the training loop.

- `gmm` (default): DivideMix's two-component mixture on the normalised losses (`method.codivide`).
- `uniform_jsd`: UNICON's class-balanced selection by Jensen-Shannon divergence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dividemix.method.codivide import Division, LossHistory
from dividemix.method.selection import gmm, uniform_jsd

RULES = {"gmm": gmm.select, "uniform_jsd": uniform_jsd.select}


@dataclass(frozen=True)
class SelectionInputs:
    """What one network's division may use: its eval logits (fp32), the noisy labels of the divided
    samples, and the rule's settings. `peer_logits`: the other network's, for a rule that ensembles
    both (UNICON's), else None; `history` and `seed` are the GMM's (its loss window, its fit)."""

    logits: torch.Tensor  # (N, C)
    labels: torch.Tensor  # (N,) int64, on the logits' device
    num_classes: int
    history: LossHistory
    p_threshold: float
    seed: int
    subset: np.ndarray | None = None  # the training-set indices divided (Clothing1M protocol), else all
    peer_logits: torch.Tensor | None = None


def select(rule: str, inputs: SelectionInputs) -> Division:
    """The division rule `rule` makes of `inputs` (a name of `RULES`)."""
    if rule not in RULES:
        raise ValueError(f"train.selection {rule!r} unknown; allowed: {', '.join(RULES)}")
    return RULES[rule](inputs)
