"""What exists: the names of the data sets and models, and the facts config validation needs.

Plain data, no imports: `config` validates `data.dataset` and `model.arch` against these names
without importing the data sets (torch, torchvision, archives) or the models. The registries
that implement them (`datasets.registry.SPECS`, `models.MODELS`) must name exactly the same
entries, with the same facts (tests/test_house.py checks both).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetFacts:
    downloads: bool  # fetched from an archive (data.url/data.md5 may name a mirror)
    asym: bool  # has an asymmetric-noise class map (noise.mode asym)
    stored: bool  # images under data.root, decoded into the prepared store (no training truth)
    lists: bool = False  # the user names the list files (data.train_list, ...); else a published layout
    classes: int | None = None  # a fixed class count (Clothing1M's 14); None: from the data (or data.num_classes)


DATASETS: dict[str, DatasetFacts] = {
    "digits": DatasetFacts(downloads=False, asym=True, stored=False),
    "cifar10": DatasetFacts(downloads=True, asym=True, stored=False),
    "cifar100": DatasetFacts(downloads=True, asym=True, stored=False),
    "folder": DatasetFacts(downloads=False, asym=False, stored=True, lists=True),
    # The published layouts, read as the official dataloaders read them (datasets/clothing1m.py, webvision.py).
    "clothing1m": DatasetFacts(downloads=False, asym=False, stored=True, classes=14),
    "webvision": DatasetFacts(downloads=False, asym=False, stored=True),
}

MODELS: tuple[str, ...] = ("cnn_small", "preact_resnet18", "resnet50", "inception_resnet_v2")
