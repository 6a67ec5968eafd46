"""Launching a training stage over several processes and machines through torchrun's elastic agent
(`torch.distributed.run`: its documented `parse_args` and `run`), and saying in one line how a
launched run ended.

The stage DVC starts becomes the agent of its machine: it runs the same script, with the same
arguments, in `distributed.processes_per_machine` worker processes, which find each other at the
c10d rendezvous (`--standalone` on one machine; `distributed.rendezvous` with several, where each
other machine runs `dividemix join`). A worker never prints its own error: it records it in the
agent's error file (torchelastic's contract) and the agent prints the root cause once, naming the
rank and the epoch. Nothing here imports torch at import time: the command line uses it too.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dividemix.config import DistributedConfig

# Set by the launch DVC runs (not by `dividemix join`): its local rank 0 is the run's writer.
WRITER_NODE = "DIVIDEMIX_WRITER_NODE"
TRAINING_STAGES = ("warmup", "baseline", "train")  # in dvc.yaml's order: the stages that spread
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def world_size(spread: "DistributedConfig") -> int:
    return spread.processes_per_machine * spread.machines


def in_worker() -> bool:
    """Whether this process is a worker the elastic agent started (it then never relaunches)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def needs_launch(spread: "DistributedConfig") -> bool:
    return world_size(spread) > 1 and not in_worker()


def elastic_args(spread: "DistributedConfig", stage: str, command: list[str]) -> list[str]:
    """torchrun's arguments for `command` (the stage script and its arguments)."""
    args = [f"--nproc-per-node={spread.processes_per_machine}", f"--max-restarts={spread.max_restarts}",
            "--monitor-interval=0.1"]
    if spread.rendezvous is None:  # one machine: c10d on localhost, a free port, a fresh id
        args.append("--standalone")
    else:
        host = spread.rendezvous.rsplit(":", 1)[0].strip("[]")
        args += [f"--nnodes={spread.machines}", "--rdzv-backend=c10d", f"--rdzv-endpoint={spread.rendezvous}",
                 f"--rdzv-id={spread.run_id}-{stage}"]
        if host in LOOPBACK:  # "machines" on one host: every agent announces the loopback address
            args.append("--local-addr=127.0.0.1")
    return args + command


@dataclass(frozen=True)
class Ending:
    """How a launched run ended badly: the root cause's global rank, exit code and message."""

    rank: int
    exitcode: int
    message: str

    @property
    def signal_name(self) -> str | None:
        if self.exitcode >= 0:
            return None
        try:
            return signal.Signals(-self.exitcode).name
        except ValueError:
            return f"signal {-self.exitcode}"


def launch(spread: "DistributedConfig", stage: str, command: list[str], *, writer: bool) -> Ending | None:
    """Run `command` in this machine's worker processes through the elastic agent and wait.

    Returns None when every worker finished, else the root cause (`Ending`). `writer`: this is the
    machine DVC runs the stage on (its local rank 0 writes the outputs).
    """
    quiet_the_agent()
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ[WRITER_NODE] = "1" if writer else "0"
    # torchrun would warn and set 1: the same, said here once, and the cores shared out
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // spread.processes_per_machine)))
    try:
        run(parse_args(elastic_args(spread, stage, command)))
    except ChildFailedError as exc:
        return root_cause(exc.failures)
    return None


def root_cause(failures: dict) -> Ending:
    """The failure that ended the run: a process killed by a signal other than the agent's own
    SIGTERM (OOM, kill -9), else the first one recorded (the others die of its absence)."""
    def order(item):
        rank, failure = item
        killed = failure.exitcode < 0 and -failure.exitcode not in (signal.SIGTERM, signal.SIGINT)
        return (not killed, failure.timestamp, rank)

    rank, failure = min(failures.items(), key=order)
    return Ending(rank, failure.exitcode, " ".join(str(failure.message).split()))


def record(message: str) -> None:
    """A worker's one-line error, into the file the agent reads it from (torchelastic's format)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        Path(path).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))


def leave_group() -> None:
    """A worker's process group closed before it exits (left open, gloo's threads abort the
    interpreter's exit: "terminate called without an active exception", a failed worker)."""
    if not in_worker():
        return
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def last_finished_epoch(resume_folder: Path | None) -> int | None:
    """The epoch of the stage's kept checkpoint (`training.resume`), None without one."""
    state = None if resume_folder is None else Path(resume_folder) / "state.pt"
    if state is None or not state.exists():
        return None
    import torch

    return int(torch.load(state, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def interrupted_line(stage: str, finished: int | None) -> str:
    """The line of a launched stage stopped by SIGINT or SIGTERM (the agent forwarded it)."""
    if finished is None:
        return f"{stage}: interrupted during epoch 0; `dvc repro` starts {stage} at epoch 0"
    return f"{stage}: interrupted during epoch {finished + 1}; `dvc repro` resumes after epoch {finished}"


def ending_line(stage: str, ending: Ending, finished: int | None) -> str:
    """One line: which rank, why, in which epoch, and where `dvc repro` takes up again."""
    epoch = 0 if finished is None else finished + 1
    resume = f"resumes after epoch {finished}" if finished is not None else f"starts {stage} at epoch 0"
    if ending.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # the workers stopped on an interrupt
        return interrupted_line(stage, finished)
    if ending.signal_name is not None:
        return (f"{stage}: rank {ending.rank} died ({ending.signal_name}) during epoch {epoch}; the other processes "
                f"were stopped; `dvc repro` {resume}")
    return f"error: {stage}: rank {ending.rank}: {ending.message}"


def quiet_the_agent() -> None:
    """The agent logs its rendezvous, signals and every failure as multi-line blocks; the stage
    prints one line of its own instead (`ending_line`). torchelastic sets each module logger's
    level from LOGLEVEL when the module is imported: call this before importing it (a LOGLEVEL
    of the user's, for debugging, is kept)."""
    import logging

    os.environ.setdefault("LOGLEVEL", "CRITICAL")
    for name, logger in list(logging.Logger.manager.loggerDict.items()):  # those imported already
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
            logger.setLevel(os.environ["LOGLEVEL"])
