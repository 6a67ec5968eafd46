"""`dividemix sweep`: a grid of settings (and seeds) as DVC experiments, N at a time, on a Prefect
task runner (dividemix_flows.sweep). Prefect loads inside the handler only.
"""

from __future__ import annotations

import argparse
import re
import time

from dividemix_cli.errors import CliError
from dividemix_cli.flows import _repo, _repo_argument


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="run a grid of parameter settings as DVC experiments, N at a time",
        description="Run every combination of the --set values as a DVC experiment (dvc exp run --temp: "
        "each point in its own temporary workspace) through a Prefect task runner; compare with dvc exp show.",
    )
    _repo_argument(sweep)
    sweep.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=V1,V2,...",
        help="a parameter of params.yaml and its values (repeatable; the grid is the product), e.g. noise.rate=0.2,0.5,0.8",
    )
    sweep.add_argument("-j", "--jobs", type=int, default=1, help="points run at once (default: 1)")
    sweep.add_argument(
        "--address", default=None,
        help="scheduler of an existing Dask cluster (tcp://HOST:8786): points run on its workers "
        "(prefect_dask.DaskTaskRunner); default: local dvc processes",
    )
    sweep.add_argument(
        "--worker-repo", default=None,
        help="with --address: the clone of this repository on the workers (default: the same path as --repo)",
    )
    sweep.add_argument(
        "--push", default=None, metavar="GIT_REMOTE",
        help="each finished point is sent with dvc exp push GIT_REMOTE (and its outputs to the DVC remote); "
        "the sweep then pulls them here (for workers on other machines)",
    )
    sweep.add_argument("--name", default=None, help="experiment name prefix (default: sweep-YYYYMMDD-HHMMSS)")
    sweep.add_argument(
        "--seeds", type=int, default=None, metavar="N",
        help="repeat every point with N seeds: repeat k adds k to noise.seed and train.seed (k = 0: the "
        "parameters as they are); `dividemix table` then gives mean and std per setting",
    )
    sweep.add_argument(
        "--seed-keys", default="noise.seed,train.seed",
        help="what --seeds varies (default both: a new draw of the noise and of the training; "
        "train.seed alone keeps the noisy labels fixed)",
    )
    sweep.set_defaults(func=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    repo = _repo(args.repo)
    if args.jobs < 1:
        raise CliError(f"-j {args.jobs}: the number of points run at once must be at least 1")
    if args.address is not None and not args.address.startswith(("tcp://", "tls://", "ws://", "wss://")):
        raise CliError(f"--address {args.address!r}: expected a Dask scheduler address such as tcp://HOST:8786")
    if args.worker_repo and not args.address:
        raise CliError("--worker-repo applies to --address only (locally, points run in --repo)")
    # The prefix becomes part of each experiment's Git ref: refuse it here, not once per point.
    if args.name is not None and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name) or ".." in args.name):
        raise CliError(f"--name {args.name!r}: letters, digits, '.', '_' and '-' only (it names Git refs)")
    from dividemix_flows.grid import grid_points, parse_grid, point_name, validate_points, with_seeds

    if not args.sets and args.seeds is None:
        raise CliError("no grid: give at least one --set KEY=V1,V2,... (e.g. --set noise.rate=0.2,0.5,0.8) or --seeds N")
    points = grid_points(parse_grid(args.sets, allow_empty=True))
    if args.seeds is not None:
        points = with_seeds(points, repo / "params.yaml", args.seeds, tuple(k.strip() for k in args.seed_keys.split(",")))
    validate_points(repo / "params.yaml", points)
    prefix = args.name or time.strftime("sweep-%Y%m%d-%H%M%S")
    names = [point_name(prefix, index, point) for index, point in enumerate(points, start=1)]

    from dividemix_flows.sweep import dividemix_sweep, format_summary, git_head

    git_head(repo)  # a commit is needed before anything starts
    if args.address:
        from prefect.settings import PREFECT_API_URL
        from prefect_dask import DaskTaskRunner

        if not PREFECT_API_URL.value():
            raise CliError(
                "--address: set PREFECT_API_URL to a Prefect server the Dask workers can reach "
                "(prefect server start --host 0.0.0.0); a temporary server lives in this process only"
            )

        runner = DaskTaskRunner(address=args.address)
    else:
        from prefect.task_runners import ThreadPoolTaskRunner

        runner = ThreadPoolTaskRunner(max_workers=args.jobs)
    summary = dividemix_sweep.with_options(task_runner=runner)(
        repo=str(repo), points=points, names=names, jobs=args.jobs,
        worker_repo=args.worker_repo, push=args.push,
    )
    print(format_summary(summary))
    return 1 if summary["failed"] else 0
