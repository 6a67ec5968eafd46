"""Model registry: `model.arch` names a constructor taking the number of classes and channels."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def cnn_small(num_classes: int, in_channels: int = 1) -> nn.Module:
    """A small VGG-style CNN for 8x8 digits: 8x8 -> 4x4 -> 2x2 -> linear head (~66k parameters)."""
    return nn.Sequential(
        _conv_bn_relu(in_channels, 32),
        _conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        _conv_bn_relu(32, 64),
        _conv_bn_relu(64, 64),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, num_classes),
    )


MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn_small": cnn_small,
}


def build_model(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    if arch not in MODELS:
        raise ValueError(f"model.arch {arch!r} unknown; allowed: {', '.join(sorted(MODELS))}")
    return MODELS[arch](num_classes=num_classes, in_channels=in_channels)
