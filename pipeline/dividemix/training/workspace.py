"""Everything an epoch needs, on the device: the images, the noisy labels, the test (and
validation) set, and the networks built from their own seeds.

Training never opens the true training labels: the test set (clean, held out) reports accuracy
each epoch as in the reference; a clean validation set, when the data set has one (Clothing1M),
picks each network's best weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dividemix.cluster.group import Cluster, join, plain
from dividemix.cluster.launch import world_size
from dividemix.config import Config
from dividemix.datasets.prepared import eval_crop_corners, images_path, read_meta, spec_from_meta, split_labels
from dividemix.datasets.spec import DatasetSpec
from dividemix.device import resolve_device
from dividemix.files import artifacts
from dividemix.images.batches import DeviceImages, ImageBatches
from dividemix.images.streamed import StreamedImages
from dividemix.method.inference import eval_logits
from dividemix.method.models import build_model
from dividemix.training.streams import init_seed

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
    torch.manual_seed(init_seed(config.train.seed, net_id))
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
    train_images: ImageBatches
    noisy_labels: torch.Tensor  # (N,) int64 on the device
    test_images: ImageBatches
    test_labels: torch.Tensor
    # The clean validation set (Clothing1M's), when the data set has one: best-weights selection.
    val_images: ImageBatches | None = None
    val_labels: torch.Tensor | None = None
    # A second test set (WebVision's ImageNet val), evaluated every epoch like the first.
    test2_images: ImageBatches | None = None
    test2_labels: torch.Tensor | None = None
    # The processes sharing the run (distributed.*); one process: every share is the whole.
    cluster: Cluster = field(default_factory=Cluster)

    @classmethod
    def load(cls, config: Config, prepared: Path, noisy_labels_path: Path) -> "Workspace":
        meta = read_meta(prepared, dataset=config.data.dataset)
        spec = spec_from_meta(meta)
        spread = config.distributed
        cluster = join(resolve_device(config.train.device), expected=world_size(spread), timeout_s=spread.timeout_s,
                       sync_batchnorm=spread.sync_batchnorm)
        device = cluster.device
        noisy = artifacts.read_table(noisy_labels_path, "noisy_labels")
        if len(noisy) != meta["n_train"] or not np.array_equal(noisy["sample_index"].to_numpy(), np.arange(meta["n_train"])):
            raise ValueError(f"{noisy_labels_path}: noisy labels do not cover the {meta['n_train']} training samples")
        if config.data.flip is not None:  # data.flip: the user's choice over the data set's default
            spec = dataclasses.replace(spec, hflip=config.data.flip)
        present = {"test": True, "val": meta["has_val"], "test2": meta["has_test2"]}
        images = {split: open_images(config, prepared, split, spec, device) for split in ("train", *present)}
        labels = {split: torch.as_tensor(split_labels(prepared, split), dtype=torch.int64).to(device) for split in present}
        return cls(
            config=config,
            device=device,
            num_classes=spec.num_classes,
            train_images=images["train"],
            noisy_labels=torch.tensor(noisy["noisy_label"].to_numpy(), dtype=torch.int64, device=device),
            test_images=images["test"],
            test_labels=labels["test"],
            **{f"{split}_{kind}": (images[split] if kind == "images" else labels[split]) if present[split] else None
               for split in ("val", "test2") for kind in ("images", "labels")},
            cluster=same_data(cluster, meta, noisy["noisy_label"].to_numpy()),
        )

    @property
    def n_train(self) -> int:
        return len(self.train_images)

    @property
    def has_val(self) -> bool:
        return self.val_images is not None

    @property
    def has_test2(self) -> bool:
        return self.test2_images is not None

    @property
    def state_device(self) -> torch.device:
        """Where a kept checkpoint is loaded: the device, or the host when it is sent to the others."""
        return torch.device("cpu") if self.cluster.spread else self.device

    def writer_stream(self, stream):
        """The progress lines' stream: the writer's; the other processes say nothing."""
        return stream if self.cluster.is_writer else io.StringIO()

    def new_net(self, net_id: int, *, pretrained: bool = True, compile: bool | None = None) -> nn.Module:
        in_channels = self.train_images.channels
        return build_net(
            self.config, self.num_classes, in_channels, net_id, self.device, pretrained=pretrained, compile=compile
        )

    def train_batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A training batch: the train transform, or the test transform under ablation.augmentation false."""
        if self.config.ablation.augmentation:
            return self.train_images.augmented(index, generator)
        return self.train_images.plain(index)

    def train_pair(self, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two training views of the same samples, their rows read once (a streamed store is read
        once per step, not twice); the draws are those of two `train_batch` calls in turn."""
        if not self.config.ablation.augmentation:
            plain = self.train_images.plain(index)
            return plain, plain
        rows = self.train_images.rows(index)
        return self.train_images.augment(rows, generator), self.train_images.augment(rows, generator)

    def logits(self, net: nn.Module, images: ImageBatches, index: torch.Tensor | None = None, *,
               amp: bool = False) -> torch.Tensor:
        """An eval pass over `images` (or `index` of them) at train.eval_batch_size, in fp32
        whatever train.amp: every figure reported (test, second test, validation, the
        best-validation ensemble, the division's losses) is measured as the reference measures it;
        bf16 logits can swap the top classes and move top-1, top-5 and the weights validation
        keeps. train.amp is a training-step option only (`amp` asks for a bf16 pass explicitly:
        no reported figure does). Under several processes each evaluates its share and every one
        gets all the logits, in order (each stored row is read by one process)."""
        options = {"batch_size": self.config.train.eval_batch_size, "amp": amp}
        if not self.cluster.spread:
            return eval_logits(plain(net), images, index=index, **options)
        n = len(images) if index is None else len(index)
        mine = self.cluster.shard(n)
        local = eval_logits(plain(net), images, index=mine if index is None else index[mine], **options)
        return self.cluster.gather(local, n)


def same_data(cluster: Cluster, meta: dict, noisy: np.ndarray) -> Cluster:
    """`cluster`, once every process has checked it reads the writer's data: the prepared images'
    digests (meta.json) and the noisy labels. A machine with another copy is refused in one line."""
    if not cluster.spread:
        return cluster
    digest = hashlib.sha256(json.dumps(meta["images_sha256"], sort_keys=True).encode() + noisy.tobytes()).digest()
    mine = torch.tensor(list(digest), dtype=torch.int64, device=cluster.device)
    if not torch.equal(cluster.from_writer(mine.clone()), mine):
        raise RuntimeError(f"distributed: this machine's data/prepared or noisy labels differ from the writer's (rank "
                           f"{cluster.writer}); every machine needs the same data (`dvc repro noise` there)")
    return cluster


def open_images(config: Config, prepared: Path, split: str, spec: DatasetSpec, device: torch.device) -> ImageBatches:
    """One split's images, streamed from disk or held on the device (data.storage; the same batches).

    Stored data sets (a crop of the stored image: folder, Clothing1M, WebVision) stream by
    default, with each row's corner of the reference's evaluation crop.
    """
    storage = config.data.storage
    if storage == "auto":
        storage = "disk" if spec.crop_size else "memory"
    path, corners = images_path(prepared, split), eval_crop_corners(prepared, split)
    options = {"channels_last": config.train.channels_last, "corners": corners}
    if storage == "disk":
        return StreamedImages(path, spec, device, **options)
    return DeviceImages(np.load(path, allow_pickle=False), spec, device, **options)
