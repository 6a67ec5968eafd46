"""DivideMix (Li, Socher, Hoi; ICLR 2020): learning with noisy labels as semi-supervised learning.

The algorithm as an importable library: configuration, data sets and noise, models, co-divide,
the MixMatch step, the epoch loop with checkpoints, and the artifact contract. It knows nothing of
DVC or Prefect; the stage scripts in `stages/` are thin shells around it. The map of the package,
and what each part may import, is in README.md ("Design: the house"). Importing the package
executes nothing.
"""
