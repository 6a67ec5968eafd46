"""Progress of a stage: a bar in a terminal, plain log lines otherwise (DVC logs, CI, Prefect).

The running stage's `Progress` is also what an interrupt reports: the epoch it was in and where
`dvc repro` takes up again (`interrupted_line`).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from dividemix.cluster.launch import note_epoch

_current: "Progress | None" = None  # the loop running in this process, for the interrupt line


class Progress:
    """Reports one line per epoch with its figures; a tqdm bar when `stream` is a terminal.

    `first_epoch` is the epoch the loop starts at; `resumed` says that the epoch before it was
    finished by an earlier run (so an interrupt before any new epoch resumes after it).
    """

    def __init__(self, stage: str, total: int, *, initial: int = 0, first_epoch: int = 0, resumed: bool = False,
                 stream: TextIO | None = None):
        global _current
        self.stage = stage
        self.total = total
        self.stream = stream or sys.stderr
        self.done = initial
        self.first_epoch = first_epoch
        self.last_epoch: int | None = first_epoch - 1 if resumed else None  # the last finished epoch
        self._start = time.perf_counter()
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=stage, unit="epoch", file=self.stream)
        _current = self
        note_epoch(first_epoch)

    def update(self, epoch: int, **figures: Any) -> None:
        """One finished epoch (`epoch` is the run's epoch number, warm-up included)."""
        self.done += 1
        self.last_epoch = epoch
        note_epoch(epoch + 1)  # (a worker's: the epoch its agent names if the run ends in it)
        text = " ".join(f"{key}={_fmt(value)}" for key, value in [("epoch", epoch), *figures.items()])
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        else:
            elapsed = time.perf_counter() - self._start
            print(f"[{self.stage}] {self.done}/{self.total} {text} ({elapsed:.1f}s)", file=self.stream, flush=True)

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(f"[{self.stage}] {message}", file=self.stream)
        else:
            print(f"[{self.stage}] {message}", file=self.stream, flush=True)

    def close(self) -> None:
        global _current
        if self._bar is not None:
            self._bar.close()
        if _current is self:
            _current = None

    def interrupted_line(self) -> str:
        """Where the loop stood: the epoch it was in and where `dvc repro` takes up again."""
        if self.last_epoch is None:
            return f"interrupted during epoch {self.first_epoch}; `dvc repro` starts {self.stage} at epoch {self.first_epoch}"
        return f"interrupted during epoch {self.last_epoch + 1}; `dvc repro` resumes after epoch {self.last_epoch}"


def interrupted_line(stage: str) -> str:
    """The one line an interrupted stage prints: the running loop's position, or that it reruns."""
    if _current is not None and _current.stage == stage:
        return _current.interrupted_line()
    return f"interrupted; its outputs are written whole or not at all, `dvc repro` runs {stage} again"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
