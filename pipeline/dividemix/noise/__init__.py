"""Noise: the noisy training labels, injected (`inject`: sym, sym_true, asym, none) or read from a
label file (`label_files`: CIFAR-N `.pt`, Parquet, CSV), written as the `noisy_labels` artifact.

May import: datasets.prepared (the truth it corrupts), files. Never: training, torch models.
Importing the package executes nothing.
"""
