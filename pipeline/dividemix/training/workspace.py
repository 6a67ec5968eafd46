"""Everything an epoch needs, on the device: the images, the noisy labels, the test (and
validation) set, and the networks built from their own seeds.

Training never opens the true training labels: the test set (clean, held out) reports accuracy
each epoch as in the reference; a clean validation set, when the data set has one (Clothing1M),
picks each network's best weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dividemix import artifacts
from dividemix.config import Config
from dividemix.datasets.prepared import load_test_set, load_train_images, load_val_set, read_meta, spec_from_meta
from dividemix.device import resolve_device
from dividemix.device_images import DeviceImages
from dividemix.inference import eval_logits
from dividemix.models import build_model
from dividemix.seeds import INIT, derived_seed

NETS = (1, 2)


def build_net(
    config: Config,
    num_classes: int,
    in_channels: int,
    net_id: int,
    device: torch.device,
    *,
    pretrained: bool = True,
    compile: bool | None = None,
) -> nn.Module:
    """A network initialised from its own seed (net1 and net2 start different, as in the reference).

    `pretrained`: load `model.pretrained` when set (a network whose weights come from a checkpoint
    next does not need to). train.channels_last puts its weights in the channels-last format;
    train.compile (or `compile`) compiles it in place with `nn.Module.compile`, which keeps the
    state-dict keys, so checkpoints do not depend on it.
    """
    torch.manual_seed(derived_seed(config.train.seed, net_id, INIT))
    if pretrained and config.model.pretrained is not None:
        net = build_model(config.model.arch, num_classes, in_channels, pretrained=config.model.pretrained)
    else:
        net = build_model(config.model.arch, num_classes, in_channels)
    net = net.to(device)
    if config.train.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if config.train.compile if compile is None else compile:
        net.compile()
    return net


@dataclass
class Workspace:
    """Everything an epoch needs, on the device: images, noisy labels, the test set."""

    config: Config
    device: torch.device
    num_classes: int
    train_images: DeviceImages
    noisy_labels: torch.Tensor  # (N,) int64 on the device
    test_images: DeviceImages
    test_labels: torch.Tensor
    # The clean validation set (Clothing1M's), when the data set has one: best-weights selection.
    val_images: DeviceImages | None = None
    val_labels: torch.Tensor | None = None

    @classmethod
    def load(cls, config: Config, prepared: Path, noisy_labels_path: Path) -> "Workspace":
        spec = spec_from_meta(read_meta(prepared, dataset=config.data.dataset))
        device = resolve_device(config.train.device)
        channels_last = config.train.channels_last
        noisy = artifacts.read_table(noisy_labels_path, "noisy_labels")
        images = load_train_images(prepared)
        if len(noisy) != len(images) or not np.array_equal(noisy["sample_index"].to_numpy(), np.arange(len(images))):
            raise ValueError(f"{noisy_labels_path}: noisy labels do not cover the {len(images)} training samples")
        test_x, test_y = load_test_set(prepared)
        val = load_val_set(prepared)
        return cls(
            config=config,
            device=device,
            num_classes=spec.num_classes,
            train_images=DeviceImages(images, spec, device, channels_last=channels_last),
            noisy_labels=torch.tensor(noisy["noisy_label"].to_numpy(), dtype=torch.int64, device=device),
            test_images=DeviceImages(test_x, spec, device, channels_last=channels_last),
            test_labels=torch.as_tensor(test_y, dtype=torch.int64).to(device),
            val_images=None if val is None else DeviceImages(val[0], spec, device, channels_last=channels_last),
            val_labels=None if val is None else torch.as_tensor(val[1], dtype=torch.int64).to(device),
        )

    @property
    def n_train(self) -> int:
        return len(self.train_images)

    @property
    def has_val(self) -> bool:
        return self.val_images is not None

    def new_net(self, net_id: int, *, pretrained: bool = True, compile: bool | None = None) -> nn.Module:
        in_channels = self.train_images.images.shape[1]
        return build_net(
            self.config, self.num_classes, in_channels, net_id, self.device, pretrained=pretrained, compile=compile
        )

    def train_batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A training batch: the train transform, or the test transform under ablation.augmentation false."""
        if self.config.ablation.augmentation:
            return self.train_images.augmented(index, generator)
        return self.train_images.plain(index)

    def logits(self, net: nn.Module, images: DeviceImages) -> torch.Tensor:
        """An eval pass over `images` at train.eval_batch_size (bf16 under train.amp)."""
        train = self.config.train
        return eval_logits(net, images, batch_size=train.eval_batch_size, amp=train.amp)
