"""The `dividemix` console script: orchestration (run, serve, sweep), audit (diff, trace, export),
the trained model (predict, export-model), presets and the code deps of dvc.yaml, as subcommands
of one program.

Each subcommand group lives in its own module with a `register(subparsers)` function; a handler
takes the parsed arguments and returns an exit code. Heavy imports (Prefect, torch) happen inside
the handlers, so `dividemix --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys

from dividemix_cli import audit, deps, flows, join, model, presets, sweep, table
from dividemix_cli.errors import CliError

GROUPS = (flows, sweep, table, audit, model, presets, deps, join)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dividemix",
        description="DivideMix pipeline: run it through Prefect, audit its divisions, apply paper presets.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(subparsers)
    return parser


def version() -> str:
    """The installed distribution's version (pyproject.toml's), without importing the library."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("dividemix-pipeline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `dividemix diff A B | head`: the reader left, nothing to report
        # Python's own flush at exit would fail again on the closed pipe: point stdout at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CliError, ValueError, OSError, RuntimeError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the library wrote
        print(f"dividemix {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
