"""Co-divide: per-sample losses -> normalise -> (history window) -> 2-component GMM -> split.

Follows `eval_train` and the main loop of the official `Train_cifar.py`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import nn

from dividemix.device import host_to_device
from dividemix.images.batches import ImageBatches
from dividemix.method.inference import eval_logits


def per_sample_loss(
    net: nn.Module,
    images: ImageBatches,
    noisy_labels: torch.Tensor,
    *,
    index: torch.Tensor | None = None,
    batch_size: int | None = None,
    amp: bool = False,
) -> torch.Tensor:
    """Cross-entropy of every training sample (or of `index`) against its noisy label.

    Eval mode and the test transform (no augmentation), as the reference's `eval_train`; batches
    of `batch_size` (default `inference.EVAL_BATCH`).
    Returns a float32 CPU tensor of shape (N,) (or (len(index),)).
    """
    logits = eval_logits(net, images, index=index, batch_size=batch_size, amp=amp)
    return losses_of(logits, noisy_labels if index is None else noisy_labels[host_to_device(index, logits.device)])


def losses_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of (N, C) logits against (N,) labels, as a float32 CPU tensor."""
    return nn.functional.cross_entropy(logits.float(), labels, reduction="none").cpu()


def min_max_normalise(losses: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] over the losses given (the whole train set, or the Clothing1M protocol's sample).

    Constant losses map to 0 (the reference divides by 0).
    """
    low, high = losses.min(), losses.max()
    span = high - low
    if span <= 0:
        return torch.zeros_like(losses)
    return (losses - low) / span


class LossHistory:
    """The last `window` normalised loss vectors of one network; memory bounded by `window`.

    The mixture input is the mean over a *slice* of the last (up to) `window` epochs, not the
    `window`-th last epoch (`history[-5:]`, never `history[-5]`: one public port got this wrong).
    """

    def __init__(self, window: int, past: list[torch.Tensor] | None = None):
        self.window = window
        self._past: deque[torch.Tensor] = deque(past or [], maxlen=window)

    def push(self, normalised: torch.Tensor) -> torch.Tensor:
        """Record this epoch's normalised losses and return the mixture input (N,)."""
        self._past.append(normalised)
        return torch.stack(list(self._past)).mean(0)

    def state(self) -> list[torch.Tensor]:
        return list(self._past)


@dataclass(frozen=True)
class Mixture:
    """A fitted two-component mixture; index `clean` is the component with the smaller mean."""

    means: tuple[float, float]
    variances: tuple[float, float]
    weights: tuple[float, float]
    clean: int


def fit_mixture(mixture_input: np.ndarray, *, seed: int) -> tuple[np.ndarray, Mixture]:
    """Fit the reference's GMM and return each sample's clean probability w_i and the fit.

    GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4) as in the official
    code; we add a seeded `random_state` (the reference leaves it unseeded) so a rerun divides
    the same way.
    """
    x = np.asarray(mixture_input, dtype=np.float64).reshape(-1, 1)
    gmm = GaussianMixture(
        n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed % (2**32)
    )
    gmm.fit(x)
    clean = int(gmm.means_.argmin())
    prob = gmm.predict_proba(x)[:, clean]
    fit = Mixture(
        means=tuple(float(m) for m in gmm.means_.ravel()),
        variances=tuple(float(v) for v in gmm.covariances_.ravel()),
        weights=tuple(float(w) for w in gmm.weights_.ravel()),
        clean=clean,
    )
    return prob, fit


def divide(clean_prob: np.ndarray, p_threshold: float) -> np.ndarray:
    """labeled = w_i > p_threshold, strictly (a sample exactly at the threshold is unlabeled)."""
    return np.asarray(clean_prob) > p_threshold


@dataclass(frozen=True)
class Division:
    """One network's division of the training set for one epoch (a record, not dataset state)."""

    loss: np.ndarray  # raw cross-entropy (N,)
    loss_norm: np.ndarray  # the mixture's input (N,)
    clean_prob: np.ndarray  # w_i (N,)
    labeled: np.ndarray  # bool (N,)
    mixture: Mixture | None  # None: a rule without a mixture (`method.selection`)
    # The training samples divided, when a subset (the Clothing1M protocol's class-balanced
    # sample): the arrays above are then indexed like it. None: all N samples, in order.
    sample_index: np.ndarray | None = None
    # What a rule other than the GMM used (its cut, quotas...): recorded in the division file's
    # metadata (`training.rows.selection_notes`); None for the GMM, whose record is its mixture.
    record: dict | None = None

    def indices(self) -> np.ndarray:
        """The training-set index of each divided sample (N,) int64."""
        return np.arange(len(self.loss), dtype=np.int64) if self.sample_index is None else self.sample_index


def co_divide_one(
    net: nn.Module,
    images: ImageBatches,
    noisy_labels: torch.Tensor,
    history: LossHistory,
    *,
    p_threshold: float,
    seed: int,
    subset: np.ndarray | None = None,
    eval_batch_size: int | None = None,
    amp: bool = False,
) -> Division:
    """The division that `net`'s losses make (used to train its peer).

    `subset` (sorted training-set indices) divides only those samples: the Clothing1M protocol
    evaluates and divides a fresh class-balanced sample each epoch (the reference's `eval_train`
    over `num_batches * batch_size` samples), normalising over that sample.
    """
    index = None if subset is None else torch.as_tensor(subset, dtype=torch.int64)
    loss = per_sample_loss(net, images, noisy_labels, index=index, batch_size=eval_batch_size, amp=amp)
    return divide_losses(loss, history, p_threshold=p_threshold, seed=seed, subset=subset)


def divide_losses(loss: torch.Tensor, history: LossHistory, *, p_threshold: float, seed: int,
                  subset: np.ndarray | None = None) -> Division:
    """The division that per-sample losses (N,) make: normalise, push to the history window, fit
    the mixture, split. `subset`: the training-set indices the losses are of (sorted)."""
    mixture_input = history.push(min_max_normalise(loss))
    clean_prob, mixture = fit_mixture(mixture_input.numpy(), seed=seed)
    return Division(
        loss=loss.numpy(),
        loss_norm=mixture_input.numpy(),
        clean_prob=clean_prob,
        labeled=divide(clean_prob, p_threshold),
        mixture=mixture,
        sample_index=None if subset is None else np.asarray(subset, dtype=np.int64),
    )
