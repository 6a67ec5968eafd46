"""What every stage script shares: its command line, config loading, one-line errors, exit codes.

Stage scripts (in `stages/`) are thin: they declare the parameter keys they read (`PARAMS`, the
same list as their `params:` in dvc.yaml, which a test checks) and the run paths they take
(`PATHS`: fields of `layout.Paths`, given by dvc.yaml as `--FIELD PATH`), and call one library
function. A bad parameter or input ends the stage before any work with one line on stderr and
exit code 2; nothing has been written by then. This is the one module of the library that reads
the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dividemix.config import Config, ConfigError, load_config, select
from dividemix.layout import Paths

EXIT_BAD_INPUT = 2


def flag(field: str) -> str:
    """The command-line flag of a `Paths` field: warmup_checkpoint -> --warmup-checkpoint."""
    return "--" + field.replace("_", "-")


def run_stage(
    name: str,
    params: Sequence[str],
    paths: Sequence[str],
    body: Callable[[Config, dict[str, Any], Paths], Any],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse `--params` and one `--FIELD PATH` per entry of `paths`, load the config, run `body`.

    `body(config, params, paths)` gets the whole validated config, the values of the stage's own
    keys `params` (recorded in its outputs) and a `Paths` with the given fields set.
    """
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"DVC stage '{name}'")
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    for field in paths:
        parser.add_argument(flag(field), dest=field, type=Path, required=True, metavar="PATH")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.params)
        body(config, select(config, params), Paths(**{field: getattr(args, field) for field in paths}))
    except (ConfigError, OSError, ValueError, RuntimeError) as exc:
        print(f"error: {name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
