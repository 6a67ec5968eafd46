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
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.states import Completed, State

from dividemix_flows import outputs
from dividemix_flows.dvcinfo import describe_changes, stage_changes, stage_order
from dividemix_flows.stream import command_env, stage_error, stream_command

CACHED = "Cached"  # the state name of a stage DVC found up to date


class StageFailed(RuntimeError):
    """A DVC stage exited with an error; the message is the stage's own one-line error."""


class _ProgressArtifact:
    """One progress artifact per running stage, created at its first progress line.

    A failed update of the UI is logged once and otherwise ignored: it must not stop a stage.
    """

    def __init__(self, logger):
        self.logger = logger
        self.ids: dict[str, Any] = {}
        self.percent: dict[str, float] = {}
        self._warned = False

    def line(self, line: str) -> None:
        parsed = outputs.parse_progress(line)
        if parsed is None:
            return
        stage, done, total, figures = parsed
        percent = min(100.0, 100.0 * done / total)
        description = f"{stage}: {done}/{total} epochs, {figures}"
        try:
            if stage not in self.ids:
                self.ids[stage] = create_progress_artifact(
                    percent, key=f"dividemix-{_key(stage)}-progress", description=description
                )
            else:
                update_progress_artifact(self.ids[stage], percent, description=description)
            self.percent[stage] = percent
        except Exception as exc:  # the UI is best-effort; the stage goes on
            if not self._warned:
                self.logger.warning("progress artifact not updated: %s", exc)
                self._warned = True


def _key(name: str) -> str:
    """An artifact key part: lowercase letters, digits and dashes only."""
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower())


@task(persist_result=False)
def dvc_stage(repo: str, stage: str) -> State | dict[str, Any]:
    """Bring one DVC stage up to date: nothing if DVC says it is, else `dvc repro --single-item`."""
    logger = get_run_logger()
    changes = stage_changes(repo, stage)
    if not changes:
        logger.info("DVC: stage '%s' is up to date (cached); not run", stage)
        return Completed(name=CACHED, message=f"cached: DVC says stage '{stage}' is up to date")

    logger.info("DVC: stage '%s' needs running (%s)", stage, describe_changes(changes))
    progress = _ProgressArtifact(logger)

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


def publish_epochs(repo: Path, *, with_division: bool) -> None:
    rows = outputs.epoch_rows(repo, with_division=with_division)
    if rows:
        create_table_artifact(
            rows, key="dividemix-epochs",
            description="Per-epoch test accuracy (ensemble and each network), labeled-set sizes and "
            "division AUC (after evaluate), read from artifacts/*/epochs and plots/division.csv.",
        )


def publish_report(repo: Path) -> None:
    markdown, html = repo / outputs.REPORT_MD, repo / outputs.REPORT_HTML
    if markdown.exists():
        create_markdown_artifact(markdown.read_text(), key="dividemix-report", description=f"{markdown}")
    if html.exists():
        create_link_artifact(
            html.resolve().as_uri(), link_text=str(html), key="dividemix-report-html",
            description="The self-contained HTML report (open on the machine that ran the flow).",
        )


# Which stage's outputs feed which artifact (the flow still learns the stages from DVC).
AFTER_STAGE = {
    "train": lambda repo: publish_epochs(repo, with_division=False),
    "evaluate": lambda repo: publish_epochs(repo, with_division=True),
    "report": publish_report,
}


@flow(name="dividemix")
def dividemix_pipeline(repo: str = ".") -> dict[str, str]:
    """Run the DVC pipeline at `repo`, one task per stage; returns {stage: "ran" | "cached"}."""
    logger = get_run_logger()
    root = Path(repo).resolve()
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
