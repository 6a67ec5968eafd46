"""Randomness in one place: every stream derived from (train.seed, epoch, network, purpose).

No global RNG carries state from epoch to epoch, so an epoch resumed from a checkpoint draws
exactly what the uninterrupted run drew, and no two purposes ever share a stream. Consumers take
their own stream by name from one `EpochStreams` object; each call starts that stream afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Purposes of the derived random streams: part of each seed, so streams never collide. The
# numbers are part of every run's results: never renumber them.
ORDER, AUGMENT, MIX, GMM, INIT, UNLABELED, SUBSET = range(7)
STRONG = 7  # train.augment weak_strong: the strong views' crops, flips and policy draws (new purposes go last)


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for one purpose, from the run's seed and integer keys (epoch, net, purpose)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _torch(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def init_seed(seed: int, net_id: int) -> int:
    """The seed network `net_id` is initialised from (net1 and net2 start different, as in the reference)."""
    return derived_seed(seed, net_id, INIT)


@dataclass(frozen=True)
class EpochStreams:
    """The random streams of one network in one epoch; every draw is made on the CPU.

    `order`: the shuffled pass over the labeled (or warm-up) samples; `unlabeled`: the endless
    unlabeled iterator; `augment`: crops and flips; `mix_permutation` and `mix_beta`: MixMatch's
    partners and its Beta(alpha, alpha) draw; `subset`: the Clothing1M protocol's class-balanced
    sample; `mixture_seed`: the Gaussian mixture's random_state.

    Under several processes (`rank`), the draws that must agree everywhere (the batches, the
    sample, lambda, the mixture) are the same in every process; the ones of a process's own share
    (its crops and flips, its mixing partners) come from its own streams. Rank 0's are the
    single process's: one process draws exactly what it always drew.
    """

    seed: int
    epoch: int
    net: int
    rank: int = 0

    def _seed(self, purpose: int) -> int:
        return derived_seed(self.seed, self.epoch, self.net, purpose)

    def _own(self, purpose: int) -> int:
        """A stream of this process's own share (rank 0: the shared one, as a single process)."""
        if self.rank == 0:
            return self._seed(purpose)
        return derived_seed(self.seed, self.epoch, self.net, purpose, self.rank)

    def order(self) -> torch.Generator:
        return _torch(self._seed(ORDER))

    def unlabeled(self) -> torch.Generator:
        return _torch(self._seed(UNLABELED))

    def augment(self) -> torch.Generator:
        return _torch(self._own(AUGMENT))

    def strong(self) -> torch.Generator:
        """The strong views' stream (a process's own share, as `augment`); the paper path never draws from it."""
        return _torch(self._own(STRONG))

    def mix_permutation(self) -> torch.Generator:
        return _torch(self._own(MIX))

    def mix_beta(self) -> np.random.Generator:
        # the same seed as mix_permutation, but a numpy stream: the two never share draws
        return np.random.default_rng(self._seed(MIX))

    def subset(self) -> np.random.Generator:
        return np.random.default_rng(self._seed(SUBSET))

    def mixture_seed(self) -> int:
        return self._seed(GMM)
