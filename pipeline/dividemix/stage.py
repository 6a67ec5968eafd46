"""What every stage script shares: argument parsing, config loading, one-line errors, exit codes.

Stage scripts (in `stages/`) are thin: they declare the parameter keys they read (`PARAMS`, the
same list as their `params:` in dvc.yaml, which a test checks) and call one library function.
A bad parameter or input ends the stage before any work with one line on stderr and exit code 2;
nothing has been written by then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dividemix.artifacts import ArtifactError
from dividemix.config import Config, ConfigError, load_config, select

EXIT_BAD_INPUT = 2


def run_stage(
    name: str,
    params: Sequence[str],
    add_arguments: Callable[[argparse.ArgumentParser], None],
    body: Callable[[Config, dict[str, Any], argparse.Namespace], Any],
    argv: Sequence[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"DVC stage '{name}'")
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.params)
        body(config, select(config, params), args)
    except (ConfigError, ArtifactError, OSError, ValueError, RuntimeError) as exc:
        print(f"error: {name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
