"""`dividemix run | serve | sweep`: the pipeline through Prefect (dividemix_flows).

`dvc repro` stays the plain way to run the pipeline; these commands put Prefect on top: a flow
run with one task per DVC stage (run), a deployment on a cron schedule served from this machine
(serve), and a grid of DVC experiments on a Prefect task runner (sweep). Prefect loads inside the
handlers only. Without PREFECT_API_URL, Prefect starts a temporary server for the command (10-25 s);
point PREFECT_API_URL at a running `prefect server start` to keep the runs and see them in the UI.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from dividemix_cli.errors import CliError


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="run the pipeline once as a Prefect flow (one task per DVC stage)",
        description="Run the DVC pipeline as a Prefect flow: one task per stage in dvc.yaml's order; "
        "DVC decides what is up to date (those tasks end 'Cached'), the rest run with dvc repro --single-item.",
    )
    _repo_argument(run)
    run.set_defaults(func=run_command)

    serve = subparsers.add_parser(
        "serve", help="serve a scheduled deployment of the pipeline flow from this machine",
        description="Create a Prefect deployment of the pipeline flow with a cron schedule and serve it "
        "from this machine until interrupted (Ctrl-C pauses the schedule).",
    )
    _repo_argument(serve)
    serve.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *" (03:00 every day)')
    serve.add_argument("--name", default="nightly", help="deployment name (default: nightly)")
    serve.add_argument("--timezone", default=None, help="IANA time zone of the schedule (default: UTC)")
    serve.set_defaults(func=serve_command)

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
    sweep.set_defaults(func=sweep_command)


def _repo_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=".", help="the pipeline's repository (default: .)")


def _repo(path: str) -> Path:
    repo = Path(path).resolve()
    if not (repo / "dvc.yaml").is_file():
        raise CliError(f"--repo {path}: no dvc.yaml there (give the pipeline's repository)")
    return repo


def run_command(args: argparse.Namespace) -> int:
    repo = _repo(args.repo)
    from dividemix_flows.pipeline import dividemix_pipeline

    outcome = dividemix_pipeline(repo=str(repo))  # a failing stage raises StageFailed (one line)
    ran = [stage for stage, status in outcome.items() if status == "ran"]
    print(f"dividemix run: {len(ran)} stage(s) ran ({', '.join(ran) or 'none'}), {len(outcome) - len(ran)} cached")
    return 0


def check_cron(expression: str) -> str:
    """The expression, if Prefect accepts it as a cron schedule; else a one-line CliError."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=expression)
    except ValueError:
        fields = len(expression.split())
        if fields != 5 and not expression.startswith("@"):
            raise CliError(
                f"--cron {expression!r}: a cron expression has 5 fields (minute hour day-of-month month "
                f'day-of-week), e.g. "0 3 * * *" for 03:00 daily; got {fields}'
            ) from None
        raise CliError(f"--cron {expression!r}: not a valid cron expression (e.g. \"0 3 * * *\": 03:00 daily)") from None
    return expression


def serve_command(args: argparse.Namespace) -> int:
    repo = _repo(args.repo)
    cron = check_cron(args.cron)
    if not args.name.strip():
        raise CliError("--name: the deployment needs a name")
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import EntrypointType

    from dividemix_flows.pipeline import dividemix_pipeline

    try:
        schedule = CronSchedule(cron=cron, timezone=args.timezone) if args.timezone else None
    except ValueError:  # pydantic's message is several lines and a URL
        raise CliError(f"--timezone {args.timezone!r}: not an IANA time zone (e.g. Europe/Paris, UTC)") from None
    # Module entrypoint: the runner imports dividemix_flows wherever this command started.
    dividemix_pipeline.serve(
        name=args.name,
        cron=None if schedule else cron,
        schedule=schedule,
        parameters={"repo": str(repo)},
        description=f"The DivideMix DVC pipeline at {repo} (dvc repro, stage by stage)",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return 0


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
    from dividemix_flows.grid import grid_points, parse_grid, point_name, validate_points

    points = grid_points(parse_grid(args.sets))
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
