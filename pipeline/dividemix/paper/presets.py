"""The paper's settings as named presets: dotted parameter overrides plus the paper's numbers.

Every cell of the paper's CIFAR tables and of CIFAR-N (`cifar_presets`), Clothing1M and WebVision
(`web_presets`). A preset is applied over `params.yaml` (`dividemix preset apply NAME`) or
queued as a DVC experiment (`dividemix preset queue --table cifar`); `find_preset(config)` finds
the cell a run belongs to, so the report can print the paper's numbers beside the run's own.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from dividemix.config import Config, parse_config
from dividemix.paper.cifar_presets import cifar_presets
from dividemix.paper.preset import Preset
from dividemix.paper.web_presets import web_presets


def _all_presets() -> dict[str, Preset]:
    return {preset.name: preset for preset in (*cifar_presets(), *web_presets())}


PRESETS: dict[str, Preset] = _all_presets()
TABLES: tuple[str, ...] = tuple(dict.fromkeys(preset.table for preset in PRESETS.values()))


def get_preset(name: str) -> Preset:
    """The preset `name`; an unknown name raises ValueError listing the allowed ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


def presets_in_table(table: str) -> list[Preset]:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; allowed: {', '.join(TABLES)}")
    return [preset for preset in PRESETS.values() if preset.table == table]


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the nested params mapping `raw` with the dotted `overrides` set."""
    out = copy.deepcopy(raw) if raw else {}
    for key, value in overrides.items():
        section, name = key.split(".")
        if out.get(section) is None:  # absent, or an empty section (`ablation:` alone in YAML)
            out[section] = {}
        if not isinstance(out[section], dict):
            raise ValueError(f"{section}: expected a section of keys, got {out[section]!r}")
        out[section][name] = value
    return out


def preset_config(raw: dict[str, Any], name: str) -> Config:
    """`raw` (a params mapping) with preset `name` applied, validated (ConfigError when invalid)."""
    return parse_config(apply_overrides(raw, get_preset(name).overrides), source=f"preset {name}")


def _same(key: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if key == "noise.file":  # the same release wherever it is kept
        return Path(str(a)).name == Path(str(b)).name
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9)
    return a == b


def _value(config: Config | dict[str, Any], key: str) -> Any:
    section, name = key.split(".")
    if isinstance(config, Config):
        return getattr(getattr(config, section), name)
    return config[key]


def find_preset(config: Config | dict[str, Any]) -> Preset | None:
    """The preset whose paper cell the run's setting (data set, noise, protocol) is, if any.

    `config` is a `Config` or a mapping of dotted keys (as `config.select` gives) holding at least
    the keys of `CELL_KEYS`.
    """
    for preset in PRESETS.values():
        if all(_same(key, _value(config, key), preset.overrides[key]) for key in preset.match_keys()):
            return preset
    return None


# Every key `find_preset` may read (the report stage declares them as its params).
CELL_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for p in PRESETS.values() for key in p.match_keys()))


def paper_result(config: Config | dict[str, Any]) -> tuple[str, float | None, float | None] | None:
    """(preset name, paper best %, paper last %) of the run's cell; None when the paper has no such cell."""
    preset = find_preset(config)
    if preset is None:
        return None
    return preset.name, preset.paper_best, preset.paper_last


def preset_differences(config: Config | dict[str, Any], name: str) -> list[tuple[str, Any, Any]]:
    """(key, run's value, preset's value) where the run departs from preset `name`.

    With a mapping of dotted keys, only the preset's keys present in it are compared.
    """
    keys = [key for key in get_preset(name).overrides if isinstance(config, Config) or key in config]
    preset = get_preset(name).overrides
    return [(key, _value(config, key), preset[key]) for key in keys if not _same(key, _value(config, key), preset[key])]
