"""The reference's views (Train_cifar.py): two weak augmentations of each labeled and unlabeled
sample, the same four guessed on and mixed. Exactly the workspace calls the loop made before the
policies were modules, in the same order, so the default run draws what it always drew."""

from __future__ import annotations


def views(images, pair, x_index, u_index, draws):
    from dividemix.images.views import StepViews  # (the package imports this module)

    x1, x2 = pair(x_index, draws.weak)  # the rows read once, augmented twice
    u1, u2 = pair(u_index, draws.weak)
    return StepViews(x1, x2, u1, u2)
