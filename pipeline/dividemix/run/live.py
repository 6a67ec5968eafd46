"""Live metrics with DVCLive, DVC's own logger: a training stage's figures, one step per epoch.

Written into `live/STAGE/` (`metrics.json`: the latest epoch, which `dvc exp show`, the VS Code
extension and DVC Studio read while the stage runs; `plots/metrics/NAME.tsv`: the history, which
`dvc plots` draws). The stage rebuilds the files from its own epoch records when it starts or
resumes (`start`), then adds each epoch once it is committed (`epoch`, after the checkpoint): so
a run killed at any point and resumed logs every epoch exactly once, never twice, none lost.
dvc.yaml declares these outputs `persist: true`, as all others.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


class LiveLog:
    """One stage's DVCLive folder. `figures` map metric names ("test_acc/net1") to numbers; None
    values (a figure the run does not have, e.g. without a validation set) are left out."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._live: Any = None

    def start(self, past: Iterable[tuple[int, dict[str, float | None]]]) -> None:
        """Start the folder over and log the epochs already done (those of a resumed run)."""
        from dvclive import Live  # here: a second of import, for the stages that log only
        from scmrepo.exceptions import SCMError

        # resume=False: DVCLive empties its folder first; the history is rewritten from `past`.
        # No dvc.yaml of its own (ours declares the outputs), no experiment of its own (the
        # stage is a step of `dvc repro` / `dvc exp run`), no report.
        options = {"resume": False, "report": None, "save_dvc_exp": False, "dvcyaml": None}
        try:
            self._live = Live(str(self.folder), **options)
        except SCMError:  # a Git repository without a commit yet ("Empty git repo")

            class LiveOutsideGit(Live):
                """DVCLive without its look at the repository, which asks Git for the current
                revision and fails before the first commit. Lost there: only DVC Studio's live
                updates, which need a commit to attach to; the files are the same."""

                def _init_dvc(self):
                    pass

            self._live = LiveOutsideGit(str(self.folder), **options)
        for epoch, figures in past:
            self.epoch(epoch, figures)

    def epoch(self, epoch: int, figures: dict[str, float | None]) -> None:
        """One finished epoch: a row of each metric's history and the new summary."""
        self._live.step = epoch
        for name, value in figures.items():
            if value is not None:
                self._live.log_metric(name, float(value))
        self._live.make_summary()

