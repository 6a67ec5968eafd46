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
import re
import signal
import tempfile
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


def elastic_args(spread: "DistributedConfig", rendezvous_id: str, command: list[str]) -> list[str]:
    """torchrun's arguments for `command` (the stage script and its arguments); `rendezvous_id`
    is the launch's own (`announce.Announcement`): unused on one machine."""
    args = [f"--nproc-per-node={spread.processes_per_machine}", f"--max-restarts={spread.max_restarts}",
            "--monitor-interval=0.1"]
    if spread.rendezvous is None:  # one machine: c10d on localhost, a free port, a fresh id
        args.append("--standalone")
    else:
        host = spread.rendezvous.rsplit(":", 1)[0].strip("[]")
        args += [f"--nnodes={spread.machines}", "--rdzv-backend=c10d", f"--rdzv-endpoint={spread.rendezvous}",
                 f"--rdzv-id={rendezvous_id}", f"--rdzv-conf=join_timeout={spread.join_timeout_s}"]
        local = spread.local_addr or ("127.0.0.1" if host in LOOPBACK else None)
        if local is not None:  # the address this machine's agent announces (loopback "machines": 127.0.0.1)
            args.append(f"--local-addr={local}")
    return args + command


@dataclass(frozen=True)
class Ending:
    """How a launched run ended badly: the root cause's global rank, exit code and message; the
    furthest epoch this machine's processes reached (None: not known); `remote`: every process
    here failed of another's absence (a collective error), so the cause is on another machine."""

    rank: int
    exitcode: int
    message: str
    epoch: int | None = None
    remote: bool = False

    @property
    def signal_name(self) -> str | None:
        if self.exitcode >= 0:
            return None
        try:
            return signal.Signals(-self.exitcode).name
        except ValueError:
            return f"signal {-self.exitcode}"


def launch(spread: "DistributedConfig", rendezvous_id: str, command: list[str], *, writer: bool) -> Ending | None:
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
    with tempfile.TemporaryDirectory(prefix="dividemix-epochs-") as epochs:
        os.environ[EPOCH_DIR] = epochs  # where each worker notes the epoch it is in (`note_epoch`)
        try:
            run(parse_args(elastic_args(spread, rendezvous_id, command)))
        except ChildFailedError as exc:
            return root_cause(exc.failures, reached(Path(epochs)))
        finally:
            del os.environ[EPOCH_DIR]
    return None


def interrupt(exc: BaseException) -> bool:
    """Whether `exc` is the agent's SignalException: SIGINT or SIGTERM, caught by the handlers
    its launch installs (and leaves in place), already forwarded to the workers."""
    from torch.distributed.elastic.multiprocessing.api import SignalException

    return isinstance(exc, SignalException)


def reached(folder: Path) -> int | None:
    """The furthest epoch this machine's workers noted (None: none noted)."""
    epochs = []
    for path in folder.iterdir():
        try:
            epochs.append(int(path.read_text()))
        except (OSError, ValueError):
            continue
    return max(epochs, default=None)


def root_cause(failures: dict, epoch: int | None = None) -> Ending:
    """The failure that ended the run, not those it caused: a process killed by a signal other
    than the agent's own SIGTERM (OOM, kill -9), else a process's own error, else the first
    collective error (every process here died of another's absence: the cause is on another
    machine). Ties go to the earliest recorded, then the lowest rank. `epoch`: the furthest epoch
    this machine's processes reached."""
    def order(item):
        rank, failure = item
        killed = failure.exitcode < 0 and -failure.exitcode not in (signal.SIGTERM, signal.SIGINT)
        return (not killed, _consequence(failure), failure.timestamp, rank)

    rank, failure = min(failures.items(), key=order)
    remote = all(_consequence(f) for f in failures.values())
    return Ending(rank, failure.exitcode, _message(failure), epoch, remote)


def _message(failure) -> str:
    return " ".join(str(failure.message).split()).removeprefix(COLLECTIVE)


def _consequence(failure) -> bool:
    """Whether a worker died of another's failure: inside a collective (another process was gone,
    as it recorded), or stopped by its agent (SIGTERM) once another had failed."""
    return str(failure.message).startswith(COLLECTIVE) or failure.exitcode in (-signal.SIGTERM, -signal.SIGINT)


COLLECTIVE = "[collective] "  # the prefix of a recorded error that a collective raised
EPOCH_DIR = "DIVIDEMIX_EPOCH_DIR"  # set by `launch` for its workers


def note_epoch(epoch: int) -> None:
    """A worker's current epoch, for its agent's line if the run ends in it (a killed worker
    writes nothing as it dies: this is written as each epoch starts). Nothing outside a launch."""
    folder = os.environ.get(EPOCH_DIR)
    if folder and Path(folder).is_dir():
        Path(folder, os.environ.get("LOCAL_RANK", "0")).write_text(str(epoch))


def record(message: str, *, collective: bool = False) -> None:
    """A worker's one-line error, into the file the agent reads it from (torchelastic's format);
    `collective`: raised by a collective (another process is gone), a consequence, not a cause."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        text = (COLLECTIVE if collective else "") + message
        Path(path).write_text(json.dumps({"message": text, "timestamp": int(time.time())}))


def collective_error(exc: BaseException) -> bool:
    """Whether `exc` is a collective's failure (a peer process died or hung), rather than this
    process's own error: torch's DistError (NCCL, the stores), or gloo's plain RuntimeError from
    its transport ("Connection closed by peer", a reset, a timeout)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and re.search(GLOO_TRANSPORT, str(exc)) is not None


GLOO_TRANSPORT = r"gloo/transport|Connection (closed|reset) by peer|Broken pipe|Timed out waiting"


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
    """One line: which process and why (its own words, or a process lost on another machine), in
    which epoch, and where `dvc repro` takes up again (`finished`: the writer's last finished
    epoch; None on a joining machine, which says the epoch its processes reached)."""
    epoch = finished + 1 if finished is not None else (ending.epoch if ending.epoch is not None else 0)
    if finished is not None:
        resume = f"`dvc repro` resumes after epoch {finished}"
    elif ending.epoch is None:
        resume = f"`dvc repro` starts {stage} at epoch 0"
    else:
        resume = "the first machine's `dvc repro` resumes the run"
    if ending.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # the workers stopped on an interrupt
        return interrupted_line(stage, finished)
    if ending.signal_name is not None and not ending.remote:
        return (f"{stage}: rank {ending.rank} died ({ending.signal_name}) during epoch {epoch}; the other processes "
                f"were stopped; {resume}")
    if ending.remote:
        return (f"{stage}: a process on another machine was lost during epoch {epoch} ({ending.message}); this "
                f"machine's processes were stopped; {resume}")
    return f"error: {stage}: rank {ending.rank}: {ending.message}"


def quiet_the_agent() -> None:
    """The agent logs its rendezvous, signals and every failure as multi-line blocks; the stage
    prints one line of its own instead (`ending_line`). torchelastic sets each module logger's
    level from LOGLEVEL when the module is imported: call this before importing it (a LOGLEVEL
    of the user's, for debugging, is kept)."""
    import importlib
    import logging

    import_torch_quietly()
    users = os.environ.get("LOGLEVEL")
    os.environ["LOGLEVEL"] = users or "CRITICAL"
    try:  # every module of the agent's whose logger would speak, imported now, under that level
        for module in AGENT_MODULES:
            importlib.import_module(module)
    finally:  # and not in the workers' environment: their own logging stays theirs
        if users is None:
            del os.environ["LOGLEVEL"]
    for name, logger in list(logging.Logger.manager.loggerDict.items()):  # those imported already
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
            logger.setLevel(users or "CRITICAL")


def import_torch_quietly() -> None:
    """torch imported with its C++ warnings off in this process (the agent's: a rendezvous store
    that closes as a stage ends logs each dropped connection with a stack); torch reads
    TORCH_CPP_LOG_LEVEL once, at import, and the workers' environment keeps the user's."""
    import sys

    if "torch" in sys.modules:
        return
    users = os.environ.get("TORCH_CPP_LOG_LEVEL")
    os.environ["TORCH_CPP_LOG_LEVEL"] = users or "ERROR"
    try:
        import torch  # noqa: F401
    finally:
        if users is None:
            del os.environ["TORCH_CPP_LOG_LEVEL"]


AGENT_MODULES = (
    "torch.distributed.run", "torch.distributed.elastic.agent.server.api",
    "torch.distributed.elastic.agent.server.local_elastic_agent", "torch.distributed.elastic.multiprocessing.api",
    "torch.distributed.elastic.multiprocessing.errors", "torch.distributed.elastic.rendezvous.dynamic_rendezvous",
    "torch.distributed.elastic.rendezvous.c10d_rendezvous_backend", "torch.distributed.launcher.api",
)
