"""A real Prefect server for tests: `prefect server start` on a free port with a temporary home.

Import the fixture into a test module (`from prefect_server import prefect_api`). It starts one
server per session (10-25 s on 2 cores), points this process (Prefect settings) and its
subprocesses (environment) at it, and stops it at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def start_server(home: Path) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    url = f"http://127.0.0.1:{port}/api"
    # the UI asks its API at port 4200 unless told otherwise (docs/prefect.md)
    env.update(QUIET, PREFECT_HOME=str(home), PREFECT_UI_API_URL=url)
    log = home / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        wait_healthy(url, process, log)
    except BaseException:
        stop_server(process)
        raise
    return process, url, log


def stop_server(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """The API URL of a fresh server; PREFECT_API_URL set here and for subprocesses meanwhile."""
    home = tmp_path_factory.mktemp("prefect_home")
    process, url, _log = start_server(home)
    client_home = tmp_path_factory.mktemp("prefect_client_home")
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**QUIET, "PREFECT_API_URL": url, "PREFECT_HOME": str(client_home)}.items():
            patch.setenv(key, value)
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: str(client_home)}):
            try:
                yield url
            finally:
                _flush_logs()
                stop_server(process)


def _flush_logs() -> None:
    """Send this process's queued run logs and events before the server goes (no errors at exit)."""
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
    except Exception:
        pass
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)
    except Exception:
        pass
