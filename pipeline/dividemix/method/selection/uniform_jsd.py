"""UNICON's uniform selection (Karim et al., CVPR 2022), as its released code runs it.

nazmul-karim170/UNICON-Noisy-Label@616dc49 (shared/reference/selection.md, section 1):
- d_i = JSD(p_i, onehot(y_i)) with the natural log and eps 1e-10 (Train_cifar.py L277-288), so
  d lies in [0, ln 2];
- the cut is mean(d); if it exceeds d_u = 0.7 it becomes mean - (mean - min(d)) / tau, tau = 5
  (L402-406, defaults L37-38). With the natural log the mean never exceeds ln 2 < 0.7: the branch
  is dead in the released code, and kept here so that it stays so;
- selection ratio SR = |{d < cut}| / N; each given class c keeps its k = floor(SR * N / C) lowest-d
  samples, all of them when it has fewer (dataloader_cifar.py L139-157); the rest are unlabeled
  (L163-167);
- the refinement weight w_i = 1 if d_i < 0.5 else 1 - d_i (L160-161) stands where DivideMix's
  clean probability stands (`px = w * y + (1 - w) * p`).

Departures from the released code, each a choice of this pipeline:
- per network (co-divide kept): p is this network's softmax and its division trains the peer;
  `peer_logits` given (train.selection_ensemble) is UNICON's p = (p1 + p2) / 2 (L291-311), both
  divisions then equal. UNICON recomputes the ensemble after net1 has trained (L401-421); here
  both divisions are made before either network trains, DivideMix's order;
- the unlabeled batch stays B (UNICON: int(B / (2 SR)), L323);
- ties in d are broken by sample order (a stable sort), where torch's sort leaves them open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from dividemix.method.codivide import Division, losses_of

if TYPE_CHECKING:
    from dividemix.method.selection import SelectionInputs

EPS = 1e-10  # UNICON's, inside each log
D_U = 0.7  # UNICON's d_u: the cut's filter threshold (dead with the natural log)
TAU = 5.0  # UNICON's tau
FULL_WEIGHT_BELOW = 0.5  # w = 1 below this divergence


def jsd(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) of each row of `probs` (N, C) from its one-hot label."""
    probs = probs.double()
    onehot = F.one_hot(labels, probs.shape[1]).double()
    m = (probs + onehot) / 2
    log_m = torch.log(m + EPS)
    kl_p = (probs * (torch.log(probs + EPS) - log_m)).sum(1)
    kl_y = (onehot * (torch.log(onehot + EPS) - log_m)).sum(1)
    return (0.5 * kl_p + 0.5 * kl_y).cpu().numpy()


def cut_of(d: np.ndarray) -> float:
    """The divergence below which a sample counts toward the selection ratio (L402-406)."""
    cut = float(d.mean())
    if cut > D_U:
        cut = cut - (cut - float(d.min())) / TAU
    return cut


def per_class(d: np.ndarray, labels: np.ndarray, num_classes: int, quota: int) -> tuple[np.ndarray, list[int]]:
    """The labeled mask: each class's `quota` lowest-d samples (all of a smaller class), and how many each took."""
    labeled = np.zeros(len(d), dtype=bool)
    taken = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        chosen = members[np.argsort(d[members], kind="stable")[:quota]]
        labeled[chosen] = True
        taken.append(len(chosen))
    return labeled, taken


def weights(d: np.ndarray) -> np.ndarray:
    """The refinement weight w (L160-161)."""
    return np.where(d < FULL_WEIGHT_BELOW, 1.0, 1.0 - d)


def select(inputs: "SelectionInputs") -> Division:
    probs = F.softmax(inputs.logits.float(), dim=1)
    if inputs.peer_logits is not None:
        probs = (probs + F.softmax(inputs.peer_logits.float(), dim=1)) / 2
    d = jsd(probs, inputs.labels)
    labels = inputs.labels.cpu().numpy()
    n, c = len(d), inputs.num_classes
    cut = cut_of(d)
    ratio = float((d < cut).mean())
    quota = int(np.floor(ratio * n / c))
    labeled, taken = per_class(d, labels, c, quota)
    record = {"rule": "uniform_jsd", "input": "jsd", "ensemble": inputs.peer_logits is not None, "cut": cut,
              "selection_ratio": ratio, "quota": quota, "taken": taken,
              "class_sizes": np.bincount(labels, minlength=c).tolist()}
    return Division(
        loss=losses_of(inputs.logits, inputs.labels).numpy(),
        loss_norm=d,
        clean_prob=weights(d),
        labeled=labeled,
        mixture=None,
        sample_index=None if inputs.subset is None else np.asarray(inputs.subset, dtype=np.int64),
        record=record,
    )
