"""Run a command and hand over its stdout and stderr lines as they come."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path


def command_env() -> dict[str, str]:
    """The environment for `dvc` and the stage commands it starts.

    The running interpreter's folder goes first on PATH, so `dvc` and the stages' `python` are the
    ones of this environment (as `. .venv/bin/activate` would do); unbuffered output, so progress
    lines arrive when they are printed.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stream_command(
    command: Sequence[str],
    *,
    cwd: str | Path,
    on_line: Callable[[str, str], None],
    env: dict[str, str] | None = None,
    keep: int = 50,
) -> tuple[int, list[str]]:
    """Run `command`; call `on_line(stream, line)` ("stdout"/"stderr") for each line, in this thread.

    Two reader threads only move lines into a queue; the callback (logging, artifact updates) runs
    in the caller's thread, with its Prefect run context. Returns the exit code and the last
    `keep` stderr lines. If the caller is interrupted, the command's process group is stopped.
    """
    process = subprocess.Popen(
        list(command), cwd=cwd, env=env if env is not None else command_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, errors="replace", bufsize=1, start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()

    def pump(name: str, pipe) -> None:
        with pipe:
            for line in pipe:
                lines.put((name, line.rstrip("\r\n")))
        lines.put((name, None))

    readers = [
        threading.Thread(target=pump, args=(name, pipe), daemon=True)
        for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    stderr_tail: deque[str] = deque(maxlen=keep)
    try:
        open_streams = len(readers)
        while open_streams:
            name, line = lines.get()
            if line is None:
                open_streams -= 1
                continue
            if name == "stderr" and line.strip():
                stderr_tail.append(line)
            on_line(name, line)
        code = process.wait()
    except BaseException:
        _stop(process)
        raise
    for reader in readers:
        reader.join()
    return code, list(stderr_tail)


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the command's process group (dvc and the stage it runs), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def stage_error(stderr_lines: Sequence[str]) -> str:
    """The stage's own one-line error from its stderr (`error: STAGE: ...`), else its last line.

    DVC prints its own summary ("ERROR: failed to reproduce ...") after the stage's output; the
    stage's line says what went wrong (a traceback's last line names the exception), so it is
    preferred, and DVC's line is the answer only when the stage printed nothing.
    """
    lines = [line.strip() for line in stderr_lines if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    for line in reversed(lines):
        if not line.startswith("ERROR: "):
            return line
    return lines[-1].removeprefix("ERROR: ") if lines else "no error message"
