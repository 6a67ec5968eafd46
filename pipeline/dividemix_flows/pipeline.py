"""The pipeline flow: one Prefect task per DVC stage, in DVC's order, DVC deciding what runs.

A task asks DVC whether its stage is up to date (`dvc status STAGE`): if so it ends in a
Completed state named "Cached" and runs nothing; otherwise it runs `dvc repro --single-item
STAGE`, streaming the stage's output into the task's log, so dvc.lock stays the one record of
what ran. Progress lines ("[train] 3/20 epoch=12 ...") advance a progress artifact per stage;
the per-epoch table, the report (markdown) and a link to report/index.html are published as the
stages that write them finish. A stage that fails fails its task and the flow run with the
stage's own one-line error; a rerun continues from what DVC cached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from dividemix_flows import experiments, ui
from dividemix_flows.dvcinfo import describe_changes, stage_changes, stage_order
from dividemix_flows.stream import command_env, stage_error, stream_command

CACHED = "Cached"  # the state name of a stage DVC found up to date


class StageFailed(RuntimeError):
    """A DVC stage exited with an error; the message is the stage's own one-line error."""


@task(persist_result=False, cache_policy=NO_CACHE)  # DVC decides what is up to date
def dvc_stage(repo: str, stage: str) -> State | dict[str, Any]:
    """Bring one DVC stage up to date: nothing if DVC says it is, else `dvc repro --single-item`."""
    logger = get_run_logger()
    changes = stage_changes(repo, stage)
    if not changes:
        logger.info("DVC: stage '%s' is up to date (cached); not run", stage)
        return Completed(name=CACHED, message=f"cached: DVC says stage '{stage}' is up to date")

    logger.info("DVC: stage '%s' needs running (%s)", stage, describe_changes(changes))
    progress = ui.ProgressArtifact(logger)

    def on_line(stream: str, line: str) -> None:
        if stream == "stderr":
            progress.line(line)
        (logger.warning if line.startswith(("error:", "ERROR:")) else logger.info)("%s", line)

    start = time.perf_counter()
    code, stderr = stream_command(["dvc", "repro", "--single-item", stage], cwd=repo, on_line=on_line, env=command_env())
    if code != 0:
        raise StageFailed(f"stage '{stage}' failed: {stage_error(stderr)}")
    seconds = round(time.perf_counter() - start, 1)
    return {"stage": stage, "status": "ran", "seconds": seconds, "progress": progress.percent}


# Which stage's outputs feed which artifact (the flow still learns the stages from DVC).
AFTER_STAGE = {
    "train": lambda repo: ui.publish_epochs(repo, with_division=False),
    "evaluate": lambda repo: ui.publish_epochs(repo, with_division=True),
    "report": ui.publish_report,
}


@flow(name="dividemix")
def dividemix_pipeline(repo: str = ".", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the DVC pipeline at `repo`.

    Without `overrides` (the default, and the schedule's): in the workspace, one task per stage;
    returns {stage: "ran" | "cached"}. With `overrides` (a custom run from the UI): checked against
    the config schema first, every problem one line, then run as a DVC experiment named after this
    flow run, in DVC's own temporary copy of the repository, so the workspace is never touched;
    returns {"experiment": NAME, "metrics": {...}}.

    Args:
        repo: the pipeline's Git + DVC repository.
        overrides: parameters of params.yaml to change, dotted keys and their values, e.g.
            {"noise.rate": 0.8, "train.lambda_u": 25}; none: run the workspace as it is.
    """
    root = Path(repo).resolve()
    if overrides:
        return run_experiment(root, overrides)
    logger = get_run_logger()
    stages = stage_order(root)
    logger.info("stages, in DVC's order: %s", " -> ".join(stages))
    outcome: dict[str, str] = {}
    for stage in stages:
        state = dvc_stage.with_options(name=f"stage-{stage}", task_run_name=stage)(
            str(root), stage, return_state=True
        )
        if not state.is_completed():
            state.result()  # raises the stage's error: the flow run fails with its message
        outcome[stage] = "cached" if state.name == CACHED else "ran"
        if stage in AFTER_STAGE:
            try:
                AFTER_STAGE[stage](root)
            except Exception as exc:  # the UI's view of the outputs is best-effort; DVC has them
                logger.warning("artifacts after stage '%s' not published: %s", stage, exc)
    ran = [stage for stage, status in outcome.items() if status == "ran"]
    logger.info("done: %s ran, %d cached", ", ".join(ran) or "nothing", len(outcome) - len(ran))
    return outcome


def run_experiment(root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides as a DVC experiment named after the flow run; its results as artifacts."""
    logger = get_run_logger()
    errors = experiments.override_errors(root / "params.yaml", overrides)
    if errors:  # before anything runs: the flow run fails with every problem, one line each
        raise experiments.OverridesRefused("\n".join(errors))
    name = experiments.experiment_name(flow_run.get_name() or "custom-run")
    settings = {key: experiments.override_text(value) for key, value in overrides.items()}
    progress = ui.ProgressArtifact(logger)
    experiments.dvc_experiment.with_options(task_run_name=name)(
        str(root), name, settings, experiments.git_head(root), on_line=progress.line,
    )
    metrics = experiments.experiment_metrics(root, [name]).get(name)
    try:
        ui.publish_experiment(root, name, metrics)
    except Exception as exc:  # the UI's copy is best-effort; `dvc exp show` has the experiment
        logger.warning("the experiment's artifacts were not published: %s", exc)
    logger.info("experiment %s done: dvc exp show lists it", name)
    return {"experiment": name, "metrics": metrics}
