"""One run over several processes and machines, on PyTorch's own engine: `launch` (torchrun's
elastic agent around a training stage, one-line endings; no torch at import time) and `group`
(the process group as the training loop sees it: shares, gathers, the writer, DDP).

May import: config (types only). Never: training, DVC, Prefect. Importing the package executes
nothing.
"""
