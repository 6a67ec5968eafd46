"""`dividemix run | serve`: the pipeline through Prefect (dividemix_flows).

`dvc repro` stays the plain way to run the pipeline; these commands put Prefect on top: a flow
run with one task per DVC stage (run), a deployment on a cron schedule served from this machine
(serve), and a grid of DVC experiments on a Prefect task runner (sweep). Prefect loads inside the
handlers only. Without PREFECT_API_URL, Prefect starts a temporary server for the command (10-25 s);
point PREFECT_API_URL at a running `prefect server start` to keep the runs and see them in the UI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dividemix_cli.errors import CliError


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="run the pipeline once as a Prefect flow (one task per DVC stage)",
        description="Run the DVC pipeline as a Prefect flow: one task per stage in dvc.yaml's order; "
        "DVC decides what is up to date (those tasks end 'Cached'), the rest run with dvc repro --single-item.",
    )
    _repo_argument(run)
    run.add_argument(
        "-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="run as a DVC experiment with this parameter changed (repeatable), as `dvc exp run -S`: in "
        "DVC's temporary copy of the repository, the workspace untouched",
    )
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


def _repo_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=".", help="the pipeline's repository (default: .)")


def _repo(path: str) -> Path:
    repo = Path(path).resolve()
    if not (repo / "dvc.yaml").is_file():
        raise CliError(f"--repo {path}: no dvc.yaml there (give the pipeline's repository)")
    return repo


def run_command(args: argparse.Namespace) -> int:
    repo = _repo(args.repo)
    overrides = parse_overrides(args.overrides)
    from dividemix_flows.pipeline import dividemix_pipeline

    if overrides:  # refused before any flow starts, one line per problem
        from dividemix_flows.experiments import git_head, override_errors

        errors = override_errors(repo / "params.yaml", overrides)
        if errors:
            raise CliError("; ".join(errors))
        git_head(repo)
        result = dividemix_pipeline(repo=str(repo), overrides=overrides)
        figures = " ".join(f"{key}={value:.4f}" for key, value in (result["metrics"] or {}).items()
                           if isinstance(value, float))
        print(f"dividemix run: experiment {result['experiment']} ({figures}); dvc exp show lists it")
        return 0
    outcome = dividemix_pipeline(repo=str(repo))  # a failing stage raises StageFailed (one line)
    ran = [stage for stage, status in outcome.items() if status == "ran"]
    print(f"dividemix run: {len(ran)} stage(s) ran ({', '.join(ran) or 'none'}), {len(outcome) - len(ran)} cached")
    return 0


def parse_overrides(items: list[str]) -> dict:
    """`-S key=value` items as typed values, as `dvc exp run -S` types them (Hydra's grammar)."""
    from dividemix_flows.grid import KEY, typed_value

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not KEY.match(key.strip()):
            raise CliError(f"-S {item!r}: expected SECTION.NAME=VALUE, e.g. -S noise.rate=0.8")
        try:
            overrides[key.strip()] = typed_value(key.strip(), value)
        except ValueError as exc:
            raise CliError(str(exc).replace("--set", "-S")) from None
    return overrides


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
