"""Sweeps: a grid of settings run as DVC experiments, N at a time, on a Prefect task runner.

Each point is `dvc exp run --temp -S key=value ... -n NAME`: DVC copies the repository into its
own temporary workspace, runs the pipeline there (reusing every stage its cache already holds) and
records the result as a DVC experiment of the repository (`dvc exp show`), so points never share
a working tree. The task runner decides where points run: threads driving `dvc` subprocesses on
this machine (default), or the workers of an existing Dask cluster (`prefect_dask.DaskTaskRunner`,
`address=`), each running the point in its own clone of the repository (`worker_repo`) and, with
`push`, sending it back with `dvc exp push` for the driver to `dvc exp pull`.

A failing point fails its own task only; the others go on, and the summary names it.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import as_completed

from dividemix_flows.experiments import (
    dvc,
    dvc_experiment,
    experiment_metrics,
    git_head,
    settings_text,
)
from dividemix_flows.stream import stage_error

SUMMARY_METRICS = ["test_acc_last10", "test_acc_last", "test_acc_best", "ce_test_acc_last", "division_auc_last"]


@flow(name="dividemix-sweep")
def dividemix_sweep(
    repo: str,
    points: list[dict[str, str]],
    names: list[str],
    jobs: int = 2,
    worker_repo: str | None = None,
    push: str | None = None,
) -> dict[str, Any]:
    """Run every point as a DVC experiment, at most `jobs` at once; return the summary.

    Returns {"baseline": commit, "points": [{"name", "settings", "status": "ok" | "failed",
    "error", "metrics", ...}], "failed": [names]}.
    """
    logger = get_run_logger()
    root = str(Path(repo).resolve())
    baseline = git_head(root)
    logger.info("sweep of %d points on commit %s, %d at a time", len(points), baseline[:12], jobs)
    queue = deque(zip(names, points))
    running: dict[Any, tuple[str, dict[str, str]]] = {}
    outcome: dict[str, dict[str, Any]] = {}

    def submit() -> None:
        name, settings = queue.popleft()
        future = dvc_experiment.with_options(task_run_name=name).submit(
            worker_repo or root, name, settings, baseline, push
        )
        running[future] = (name, settings)

    while queue and len(running) < jobs:
        submit()
    while running:
        future = next(as_completed(list(running)))  # N at a time, whatever the runner's capacity
        name, settings = running.pop(future)
        future.wait()  # the final state, not the last one this process saw
        state = future.state
        row: dict[str, Any] = {"name": name, "settings": settings}
        if state.is_completed():
            row.update(status="ok", error=None, **future.result())
        else:
            error = state.result(raise_on_failure=False)
            row.update(status="failed", error=str(error) if isinstance(error, BaseException) else state.message)
            logger.warning("point %s failed: %s", name, row["error"])
        outcome[name] = row
        if queue:
            submit()

    ok = [name for name in names if outcome[name]["status"] == "ok"]
    if push:
        for name in ok:
            pulled = dvc(root, "exp", "pull", push, name)
            if pulled.returncode != 0:
                logger.warning("dvc exp pull %s %s: %s", push, name, stage_error(pulled.stderr.splitlines()))
    metrics = experiment_metrics(root, ok) if ok else {}
    rows = []
    for name in names:
        row = outcome[name]
        row["metrics"] = metrics.get(name)
        rows.append(row)
    failed = [name for name in names if outcome[name]["status"] == "failed"]
    create_table_artifact(
        [
            {"experiment": row["name"], "settings": settings_text(row["settings"]), "status": row["status"],
             **{key: (row["metrics"] or {}).get(key) for key in SUMMARY_METRICS}, "error": row["error"]}
            for row in rows
        ],
        key="dividemix-sweep",
        description=f"Sweep on commit {baseline[:12]}: {len(ok)} of {len(names)} points finished "
        "(DVC experiments: dvc exp show).",
    )
    summary = {"baseline": baseline, "points": rows, "failed": failed}
    logger.info("sweep done: %d ok, %d failed%s", len(ok), len(failed), f" ({', '.join(failed)})" if failed else "")
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as printed by `dividemix sweep`: one line per point."""
    lines = [f"sweep on commit {summary['baseline'][:12]}:"]
    for row in summary["points"]:
        if row["status"] == "ok":
            metrics = row["metrics"] or {}
            figures = " ".join(f"{key}={metrics[key]:.4f}" for key in SUMMARY_METRICS if metrics.get(key) is not None)
            lines.append(f"  ok      {row['name']}  {settings_text(row['settings'])}  {figures}")
        else:
            lines.append(f"  FAILED  {row['name']}  {settings_text(row['settings'])}  {row['error']}")
    failed = summary["failed"]
    lines.append(
        f"{len(summary['points']) - len(failed)} of {len(summary['points'])} points finished"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + " (dvc exp show to compare, dvc exp apply NAME to take one)"
    )
    return "\n".join(lines)
