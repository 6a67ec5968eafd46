"""Progress of a stage: a bar in a terminal, plain log lines otherwise (DVC logs, CI, Prefect)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Reports one line per epoch with its figures; a tqdm bar when `stream` is a terminal."""

    def __init__(self, stage: str, total: int, *, initial: int = 0, stream: TextIO | None = None):
        self.stage = stage
        self.total = total
        self.stream = stream or sys.stderr
        self.done = initial
        self._start = time.perf_counter()
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=stage, unit="epoch", file=self.stream)

    def update(self, epoch: int, **figures: Any) -> None:
        """One finished epoch (`epoch` is the run's epoch number, warm-up included)."""
        self.done += 1
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
        if self._bar is not None:
            self._bar.close()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
