"""What the benchmarks share: device-aware timing, peak memory, the machine line, a scratch folder.

Benchmarks print figures and assert nothing; read every time with the load average printed
beside it (the machines are shared).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """perf_counter after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


def timed(device: torch.device, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, float]:
    start = clock(device)
    result = fn(*args, **kwargs)
    return result, clock(device) - start


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def machine_line() -> str:
    """CPUs and load: other processes on the machine inflate every figure (read them together)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average (1, 5, 15 min) {load}"


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench_dividemix_"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
