"""`dividemix deps`: each stage's code dependencies in dvc.yaml, rewritten from the imports.

A stage's `pipeline/` deps are exactly the library files its script executes (the closure of its
imports, `dividemix.run.code_deps`). After moving or adding an import, `dividemix deps` rewrites
them (comments and every other line kept); `--check` only lists the stages that drifted (exit 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    deps = subparsers.add_parser("deps", help="rewrite each stage's code deps in dvc.yaml from the imports",
                                 description=__doc__.split("\n\n")[0])
    deps.add_argument("--repo", type=Path, default=Path("."), help="the repository holding dvc.yaml (default: .)")
    deps.add_argument("--check", action="store_true", help="change nothing: list the stages that drifted, exit 1 if any")
    deps.set_defaults(func=deps_command)


def deps_command(args: argparse.Namespace) -> int:
    from dividemix.run.code_deps import sync_dvc_yaml

    drift = sync_dvc_yaml(args.repo, write=not args.check)
    if not drift:
        print("dvc.yaml: every stage's code deps match its imports")
        return 0
    verb = "drifted" if args.check else "rewritten"
    print(f"dvc.yaml: code deps {verb} for {', '.join(drift)}")
    return 1 if args.check else 0
