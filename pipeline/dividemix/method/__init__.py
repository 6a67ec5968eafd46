"""The method: one step of the paper a function, testable against hand-computed numbers.

`codivide` (per-sample losses, normalisation, the two-component mixture, the split), `mixmatch`
(co-guessing, co-refinement, sharpening, MixMatch, the losses of one step), `models` (the
networks), `inference` (eval passes over an image set). May import: device, images, torch,
scikit-learn. Never: the truth, the epoch loop, DVC, Prefect. Importing the package executes nothing.
"""
