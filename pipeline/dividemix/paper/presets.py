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

from dividemix.config import RESULT_NEUTRAL, Config, parse_config
from dividemix.paper.cifar_presets import cifar_presets
from dividemix.paper.preset import SWITCH_KEYS, Preset
from dividemix.paper.successor_presets import successor_presets
from dividemix.paper.web_presets import REFERENCE_DATA, web_presets


def _all_presets() -> dict[str, Preset]:
    return {preset.name: preset for preset in (*cifar_presets(), *web_presets(), *successor_presets())}


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
    if key in ("noise.file", "model.pretrained"):  # the same release (or weights) wherever it is kept
        return Path(str(a)).name == Path(str(b)).name
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(key, x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return not isinstance(a, bool) and not isinstance(b, bool) and math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9)
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
    matches = [preset for preset in PRESETS.values()
               if all(_same(key, _or_default(config, key) if key in SWITCH_KEYS else _value(config, key),
                            preset.overrides[key]) for key in preset.match_keys())]
    # A run with a switch on is the cell of the method that switch comes from, where there is one
    # (AugDesc-WS, UNICON); else the paper's cell, which then lists the switch as a departure.
    switched = [preset for preset in matches if set(SWITCH_KEYS) & set(preset.match_keys())]
    return (switched or matches or [None])[0]


# Every key `find_preset` needs (the report stage declares them as its params); the switches
# (SWITCH_KEYS) are read with their defaults where a run predates them.
CELL_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for p in PRESETS.values() for key in p.match_keys()
                                                 if key not in SWITCH_KEYS))


def paper_result(config: Config | dict[str, Any]) -> tuple[str, float | None, float | None] | None:
    """(preset name, paper best %, paper last %) of the run's cell; None when the paper has no such cell."""
    preset = find_preset(config)
    if preset is None:
        return None
    return preset.name, preset.paper_best, preset.paper_last


# Keys that change no figure of a run, so a run is compared with its paper cell whatever they are:
# where the data, archives and weights' copies are kept (a location, not a setting), decode processes
# and storage, the seeds (a cell's repeats), the device and how a step is computed (precision, memory
# format, compile, the eval passes' batch: the paper's figures are fp32, the web presets' bf16 training
# is a departure the guide lists), the truth list (evaluate's division figures only), and distributed.*.
NOT_FIGURE_KEYS = frozenset(RESULT_NEUTRAL) | {
    "data.raw_dir", "data.url", "data.md5", "data.root", "data.imagenet_val", "data.train_list", "data.val_list",
    "data.test_list", "data.test2_list", "data.truth_list", "noise.seed", "train.seed", "train.device",
    "train.amp", "train.channels_last", "train.compile", "train.eval_batch_size",
} | {f"distributed.{key}" for key in Config.model_fields["distributed"].annotation.model_fields}
# Every other key changes what is measured: a run matches its cell only if each equals the preset's.
FIGURE_KEYS: tuple[str, ...] = tuple(
    f"{section}.{key}" for section, field in Config.model_fields.items()
    for key in field.annotation.model_fields if f"{section}.{key}" not in NOT_FIGURE_KEYS)
_DEFAULTS = Config().model_dump(mode="json")


def _or_default(config: Config | dict[str, Any], key: str) -> Any:
    """The run's value; a key its mapping lacks (an experiment from before the key existed) is the default."""
    if isinstance(config, Config) or key in config:
        return _value(config, key)
    section, name = key.split(".")
    return _DEFAULTS[section][name]


def _unread(key: str, wanted: dict[str, Any], lambda_u: Any) -> bool:
    """Whether neither the preset's setting nor the run reads `key`, so no value of it departs from the
    cell: the rate without injected noise, the sample size off the Clothing1M protocol, the ramp of a
    zero lambda_u."""
    return (key == "noise.rate" and wanted["noise.mode"] in ("none", "file")
            or key == "train.num_batches" and wanted["train.protocol"] != "clothing1m"
            or key == "train.rampup_epochs" and wanted["train.lambda_u"] == 0 and lambda_u == 0)


def preset_differences(config: Config | dict[str, Any], name: str) -> list[tuple[str, Any, Any]]:
    """(key, run's value, preset's value) for every key that changes the figure (`FIGURE_KEYS`) where
    the run departs from preset `name`; empty: the run is like for like with the paper's cell.

    The preset's value of a key it does not set is the default; a null the data set resolves (the
    reference's crop, flip, class count) equals the value it resolves to. A mapping of dotted keys
    lacking a key counts as the default.
    """
    preset = get_preset(name)
    wanted = {key: preset.overrides.get(key, _DEFAULTS[key.split(".")[0]][key.split(".")[1]]) for key in FIGURE_KEYS}
    resolved = {"data.flip": True} | REFERENCE_DATA.get(wanted["data.dataset"], {})  # what null means for the cell
    lambda_u, out = _or_default(config, "train.lambda_u"), []
    for key in FIGURE_KEYS:
        value = _or_default(config, key)
        ran = resolved.get(key) if value is None else value
        want = resolved.get(key) if wanted[key] is None else wanted[key]
        if not _unread(key, wanted, lambda_u) and not _same(key, ran, want):
            out.append((key, value, wanted[key]))
    return out


def _shown(value: Any) -> str:
    """A value as params.yaml writes it (null, true), so a departure reads as the key to set."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def describe_departures(differences: list[tuple[str, Any, Any]]) -> str:
    """"train.epochs 80 (preset 81), data.num_classes 100 (preset null)"."""
    return ", ".join(f"{key} {_shown(value)} (preset {_shown(wanted)})" for key, value, wanted in differences)
