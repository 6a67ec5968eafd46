"""The epoch loop, one module per phase of the paper: warm-up, the co-divide + MixMatch epoch,
the cross-entropy baseline, and checkpoint/resume.

Structure follows the official `Train_cifar.py` main loop. Training reads images and *noisy*
labels only: the true training labels never enter this package (tests/test_house.py checks that
no module of it names them). May import: config, device, files, run, cluster, datasets, images, method.
Never: judging, the data-set families. Importing the package executes nothing.
"""
