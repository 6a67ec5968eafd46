"""Each stored data set's reader by name: what `check` (the sources' manifest) and `download`
(the store) both read, pure Python (no image is opened, nothing is imported but the readers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dividemix.datasets.clothing1m import clothing1m_sources
from dividemix.datasets.folder_lists import SourceSet, folder_sources
from dividemix.datasets.webvision import webvision_sources

if TYPE_CHECKING:
    from dividemix.config import DataConfig

READERS = {"folder": folder_sources, "clothing1m": clothing1m_sources, "webvision": webvision_sources}


def source_set(data: "DataConfig") -> SourceSet:
    """The splits, classes and files of stored data set `data.dataset`, checked (every image exists)."""
    return READERS[data.dataset](data)
