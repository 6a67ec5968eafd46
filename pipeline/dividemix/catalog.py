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
    folder: bool  # the user's own images (data.root and list files; no training truth)


DATASETS: dict[str, DatasetFacts] = {
    "digits": DatasetFacts(downloads=False, asym=True, folder=False),
    "cifar10": DatasetFacts(downloads=True, asym=True, folder=False),
    "cifar100": DatasetFacts(downloads=True, asym=True, folder=False),
    "folder": DatasetFacts(downloads=False, asym=False, folder=True),
}

MODELS: tuple[str, ...] = ("cnn_small", "preact_resnet18", "resnet50", "inception_resnet_v2")
