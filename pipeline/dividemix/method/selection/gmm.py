"""DivideMix's rule (the default): per-sample cross-entropy, min-max normalised, averaged over the
loss-history window, a two-component GMM, labeled = clean probability > p_threshold.

Exactly the calls the train loop made before the rules were modules (`codivide.divide_losses`),
so a default run draws and writes what it always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dividemix.method.codivide import Division, divide_losses, losses_of

if TYPE_CHECKING:
    from dividemix.method.selection import SelectionInputs


def select(inputs: "SelectionInputs") -> Division:
    return divide_losses(losses_of(inputs.logits, inputs.labels), inputs.history, p_threshold=inputs.p_threshold,
                         seed=inputs.seed, subset=inputs.subset)
