"""The data sets by name (`data.dataset`): the specs of every family, and the download stage's entry.

The names are those of `catalog.DATASETS` (what config validates against); tests check that the
two agree, facts included. Only `download` imports this module: it imports every family.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dividemix.datasets.cifar import CIFAR10, CIFAR100
from dividemix.datasets.digits import DIGITS
from dividemix.datasets.folder import CLOTHING1M, FOLDER, WEBVISION
from dividemix.datasets.spec import DatasetSpec

if TYPE_CHECKING:
    from dividemix.config import DataConfig

SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (DIGITS, CIFAR10, CIFAR100, FOLDER, CLOTHING1M, WEBVISION)}


def prepare_dataset(data: "DataConfig", dest: Path) -> dict:
    """The download stage: prepare `data.dataset` into `dest` (a fresh folder) and return its meta."""
    return SPECS[data.dataset].prepare(Path(dest), data)
