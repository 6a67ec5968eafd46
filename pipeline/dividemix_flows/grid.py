"""A sweep's grid: `--set key=v1,v2,...` options, their product, and checks before any run.

Values are typed as DVC will type them (`dvc exp run -S key=value` parses with Hydra's override
grammar), then each point's full parameter set is validated by the pipeline's own schema
(`dividemix.config.parse_config`), so a bad value is a one-line error before anything starts.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

KEY = re.compile(r"^[A-Za-z_][\w]*\.[A-Za-z_][\w]*$")


SEED_KEYS = ("noise.seed", "train.seed")  # what --seeds varies, together by default


def parse_grid(options: list[str], *, allow_empty: bool = False) -> dict[str, list[str]]:
    """{"noise.rate": ["0.2", "0.5"], ...} from ["noise.rate=0.2,0.5", ...], in the given order."""
    if not options and not allow_empty:
        raise ValueError("no grid: give at least one --set KEY=V1,V2,... (e.g. --set noise.rate=0.2,0.5,0.8) or --seeds N")
    grid: dict[str, list[str]] = {}
    for option in options:
        key, sep, values = option.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise ValueError(f"--set {option!r}: expected KEY=V1,V2,... (e.g. noise.rate=0.2,0.5)")
        if not KEY.match(key):
            raise ValueError(f"--set {option!r}: the key must be SECTION.NAME of params.yaml (e.g. noise.rate)")
        if key in grid:
            raise ValueError(f"--set: {key} given twice; list all its values in one --set")
        items = [value.strip() for value in values.split(",")]
        if any(not value for value in items):
            raise ValueError(f"--set {option!r}: empty value in the list")
        if len(set(items)) != len(items):
            raise ValueError(f"--set {option!r}: a value is listed twice")
        grid[key] = items
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination, the last key varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


def with_seeds(points: list[dict[str, str]], params_file: str | Path, count: int,
               keys: tuple[str, ...] = SEED_KEYS) -> list[dict[str, str]]:
    """Each point `count` times: repeat k (0..count-1) adds k to each seed key's value in
    params.yaml, so repeat 0 is the parameters as they are (whatever DVC has cached of it is reused).

    Both seeds vary together by default: a repeat is a new draw of the whole experiment, which
    samples are corrupted and to what (noise.seed) as well as how the networks start and see the
    data (train.seed), the spread a user meets when running a setting again. `keys` ("train.seed"
    alone) keeps the noisy labels fixed to measure the training's own variance.
    """
    from dividemix.config import read_params

    if count < 1:
        raise ValueError(f"--seeds {count}: the number of seeds must be at least 1")
    unknown = [key for key in keys if key not in SEED_KEYS]
    if unknown:
        raise ValueError(f"--seed-keys {','.join(unknown)}: allowed: {', '.join(SEED_KEYS)}")
    raw = read_params(params_file) or {}  # as DVC reads it (YAML 1.2)
    out = []
    for point in points:
        clash = [key for key in keys if key in point]
        if clash:
            raise ValueError(f"--set {clash[0]}: --seeds varies it; leave it out of the grid (or drop --seeds)")
        for k in range(count):
            out.append(point | {key: str(int(raw[key.split(".")[0]][key.split(".")[1]]) + k) for key in keys})
    return out


def typed_value(key: str, value: str) -> Any:
    """`value` as `dvc exp run -S key=value` will write it into params.yaml."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # DVC installs Hydra; YAML 1.2 (as DVC reads params.yaml) is its close cousin for plain scalars
        from dividemix.config import parse_params_text

        return parse_params_text(value, source=f"--set {key}")
    try:
        override = OverridesParser.create().parse_override(f"{key}={value}")
    except Exception as exc:  # Hydra's grammar errors are multi-line
        raise ValueError(f"--set {key}={value}: not a value DVC can parse ({str(exc).splitlines()[0]})") from None
    if override.is_sweep_override():
        raise ValueError(f"--set {key}={value}: one plain value per list item (no ranges, choices or globs)")
    return override.value()


def validate_points(params_file: str | Path, points: list[dict[str, str]]) -> None:
    """Raise ValueError (one line) if any point's parameters would be refused by the stages."""
    import copy

    from dividemix.config import ConfigError, parse_config, read_params

    params_file = Path(params_file)
    try:
        base = read_params(params_file) or {}  # as DVC reads it (YAML 1.2)
    except OSError as exc:
        raise ValueError(f"{params_file}: cannot read the parameters ({exc})") from None
    for point in points:
        raw = copy.deepcopy(base)
        for key, value in point.items():
            section, name = key.split(".")
            if not isinstance(raw.get(section, {}), dict):
                raise ValueError(f"--set {key}: {section} is not a section of {params_file}")
            raw.setdefault(section, {})[name] = typed_value(key, value)
        try:
            parse_config(raw, source="sweep")
        except ConfigError as exc:
            message = str(exc).removeprefix("sweep: ")
            for key, value in point.items():  # the message names the key at fault
                if message.startswith(f"{key}: "):
                    raise ValueError(f"--set {key}={value}: {message.removeprefix(f'{key}: ')}") from None
            listed = ", ".join(f"{key}={value}" for key, value in point.items())
            raise ValueError(f"sweep point {listed}: {message}") from None


def point_name(prefix: str, index: int, point: dict[str, str]) -> str:
    """An experiment name (a valid Git ref part): prefix, position, and the values, e.g. sweep-1-0.2-sym."""
    values = "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", value) for value in point.values())
    return f"{prefix}-{index}-{values}".strip("-.")[:100]
