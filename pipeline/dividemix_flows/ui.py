"""What a flow run shows in the Prefect UI: progress bars, the per-epoch table, the report, and
an experiment's results. Read from what the stages write, never from training code; every
update is best-effort (a failure is logged, the run goes on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from dividemix_flows import outputs


class ProgressArtifact:
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


def publish_experiment(repo: Path, name: str, metrics: dict[str, Any] | None) -> None:
    """A custom run's result: the experiment's name and how to use it, its metrics, its report
    (read from the experiment through DVC, and its HTML page saved where a link can reach it)."""
    create_markdown_artifact(
        f"Experiment **{name}** of `{repo}`: `dvc exp show` lists it, `dvc exp apply {name}` takes it "
        f"into the workspace, `dvc exp push REMOTE {name}` shares it.",
        key="dividemix-experiment", description=f"the DVC experiment {name}",
    )
    if metrics:
        create_table_artifact([{"metric": key, "value": value} for key, value in metrics.items()],
                              key="dividemix-experiment-metrics", description=f"{outputs.EVAL_JSON} of {name}")
    markdown, page = outputs.experiment_report(repo, name)
    if markdown is not None:
        create_markdown_artifact(markdown, key="dividemix-report", description=f"{outputs.REPORT_MD} of {name}")
    if page is not None:
        create_link_artifact(page.resolve().as_uri(), link_text=str(page), key="dividemix-report-html",
                             description=f"{name}'s self-contained HTML report (on the machine that ran the flow)")
