"""The reference's optimiser and learning-rate schedule (a pure function of the epoch)."""

from __future__ import annotations

import torch
from torch import nn

from dividemix.config import TrainConfig


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """lr until `lr_drop_epoch`, then lr / 10 (the reference's step at epoch 150 of 300)."""
    return train.lr / 10 if epoch >= train.lr_drop_epoch else train.lr


def make_optimizer(net: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
