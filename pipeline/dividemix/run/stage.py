"""What every stage script shares: its command line, config loading, one-line errors, interrupts.

Stage scripts (in `stages/`) are thin: they declare the parameter keys they read (`PARAMS`, the
same list as their `params:` in dvc.yaml, which a test checks) and the run paths they take
(`PATHS`: fields of `layout.Paths`, given by dvc.yaml as `--FIELD PATH`), and call one library
function. This is the one module of the library that reads the command line.

- A bad parameter or input ends the stage before it writes anything, with one line on stderr
  and exit code 2. Every output is written atomically and DVC does not delete them before a
  run (`persist: true`), so whatever was there stays byte for byte.
- SIGINT (Ctrl-C) and SIGTERM end it with one line saying where it stood and where `dvc repro`
  takes up again, exit 130 or 143; the last checkpoint is whole (written atomically).
- The stage dies with its parent: when `dvc repro` itself is killed, the stage gets SIGTERM
  (Linux's parent-death signal; dvc.yaml runs each command with `exec`, so that the parent is
  DVC and not a shell), instead of training on unseen.

`run_stage` installs the signal handlers before anything slow: stage scripts import the library
code they run inside `body`, so an interrupt during those imports (torch: seconds) is one line
too, and a refused parameter is refused before them.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dividemix.cluster import launch
from dividemix.cluster.announce import announced
from dividemix.config import Config, ConfigError, load_config, select
from dividemix.files.layout import Paths
from dividemix.run.progress import interrupted_line

EXIT_BAD_INPUT = 2
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt: no handler catches it by accident)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    _ignore_further_signals()
    raise Interrupted(signum)


def _ignore_further_signals() -> None:
    """Once is enough: a second signal (DVC's own, then the parent-death one) must not interrupt
    the one line and the exit with a traceback."""
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, signal.SIG_IGN)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted`; on Linux, SIGTERM also comes when the parent dies."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job ignores Ctrl-C: keep it so
        signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the call: nobody is waiting for this stage
            os.kill(os.getpid(), signal.SIGTERM)


def flag(field: str) -> str:
    """The command-line flag of a `Paths` field: warmup_checkpoint -> --warmup-checkpoint."""
    return "--" + field.replace("_", "-")


def run_stage(
    name: str,
    params: Sequence[str],
    paths: Sequence[str],
    body: Callable[[Config, dict[str, Any], Paths], Any],
    argv: Sequence[str] | None = None,
    *,
    spreads: bool = False,
) -> None:
    """Parse `--params` and one `--FIELD PATH` per entry of `paths`, load the config, run `body`.

    `body(config, params, paths)` gets the whole validated config, the values of the stage's own
    keys `params` (recorded in its outputs) and a `Paths` with the given fields set. A stage that
    `spreads` (the training stages) runs, when distributed.* asks for several processes, as the
    elastic agent of this machine (`cluster.launch`): the same script in each worker process.
    """
    install_signal_handlers()
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"DVC stage '{name}'")
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    for field in paths:
        parser.add_argument(flag(field), dest=field, type=Path, required=True, metavar="PATH")
    try:
        args = parser.parse_args(argv)
        config = load_config(args.params)
        stage_paths = Paths(**{field: getattr(args, field) for field in paths})
        if spreads and launch.needs_launch(config.distributed):
            sys.exit(_as_agent(name, config, stage_paths, list(sys.argv[1:] if argv is None else argv)))
        try:
            body(config, select(config, params), stage_paths)
        finally:
            launch.leave_group()  # a worker's process group, closed however the body ended
    except (ConfigError, OSError, ValueError, RuntimeError) as exc:
        if launch.in_worker():  # the agent says it, once, for every process (`cluster.launch`)
            launch.record(" ".join(str(exc).split()), collective=launch.collective_error(exc))
        else:
            print(f"error: {name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except (Interrupted, KeyboardInterrupt) as exc:
        _ignore_further_signals()  # (a Ctrl-C's KeyboardInterrupt did not pass through _interrupt)
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        if not launch.in_worker():
            print(f"{name}: {interrupted_line(name)}", file=sys.stderr, flush=True)
        sys.exit(128 + signum)


def _as_agent(name: str, config: Config, paths: Paths, argv: list[str]) -> int:
    """This machine's elastic agent for the stage: its workers run the same script; one line and
    the exit status say how they ended (the root cause's rank and epoch)."""
    launch.quiet_the_agent()
    from torch.distributed.elastic.multiprocessing.api import SignalException

    kept = None if paths.resume is None else paths.resume / name  # (the training stages keep their progress)
    try:
        with announced(config.distributed, name) as launched:  # what the joining machines follow
            ending = launch.launch(config.distributed, launched.rendezvous_id(config.distributed.run_id),
                                   [sys.argv[0], *argv], writer=True)
    except SignalException as exc:  # the agent forwarded it to the workers, which stopped
        print(launch.interrupted_line(name, launch.last_finished_epoch(kept)), file=sys.stderr, flush=True)
        return 128 + int(exc.sigval)
    except Exception as exc:  # the launch itself failed (a rendezvous nobody else joined, a port in use)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {name}: the launch of {launch.world_size(config.distributed)} processes failed: {reason}",
              file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    if ending is None:
        return 0
    print(launch.ending_line(name, ending, launch.last_finished_epoch(kept)), file=sys.stderr, flush=True)
    if ending.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return ending.exitcode
    return 1 if ending.signal_name else EXIT_BAD_INPUT
