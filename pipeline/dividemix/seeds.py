"""Randomness in one place: every stream derived from (train.seed, epoch, network, purpose).

No global RNG carries state from epoch to epoch, so an epoch resumed from a checkpoint draws
exactly what the uninterrupted run drew, and no two purposes ever share a stream.
"""

from __future__ import annotations

import numpy as np
import torch

# Purposes of the derived random streams (part of the seed, so streams never collide).
ORDER, AUGMENT, MIX, GMM, INIT, UNLABELED, SUBSET = range(7)


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for one purpose, from the run's seed and integer keys (epoch, net, purpose)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)[0] >> 1)


def torch_generator(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, *keys))


def numpy_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(derived_seed(seed, *keys))
