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


def run_sampled(command: list[str], *, cwd: Path, env: dict | None = None, every: float = 0.1) -> tuple[str, float]:
    """Run `command`; return (its stdout, the peak PSS of its process tree in MB).

    PSS (proportional set size) counts a page shared by k processes as 1/k in each, so the sum over
    a parent and its workers (DataLoader workers, decode processes) is the tree's real footprint.
    Sampled every `every` seconds (a peak shorter than that can be missed).
    """
    import subprocess
    import threading

    import psutil

    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env)
    root = psutil.Process(process.pid)
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            total = 0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except psutil.Error:  # a worker that just ended
                    pass
            peak[0] = max(peak[0], total / 2**20)
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} ... failed with exit code {process.returncode}")
    return out, peak[0]
