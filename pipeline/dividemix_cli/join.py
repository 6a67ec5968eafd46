"""`dividemix join`: this machine joins a run that DVC runs on another one (distributed.machines > 1).

Run it on each other machine, in the repository with the same code, params.yaml and data (the
prepared data: `dvc repro noise` there, or a shared file system), before or while `dvc repro`
(or `dvc exp run`) runs on the first one: it follows the first machine, joining exactly the
training stages DVC launches there, in the order it launches them (a stage DVC skips is skipped
here too; a rerun of `train` alone, a resume after a killed process, are joined as they come),
with distributed.processes_per_machine processes each. Only the first machine writes; this one
computes its share. It leaves after distributed.join_timeout_s seconds with no stage launched,
after the first stage with --once, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dividemix_cli.errors import CliError


def register(subparsers) -> None:
    join = subparsers.add_parser("join", help="join a distributed run DVC runs on another machine",
                                 description=__doc__.split("\n\n")[0])
    join.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file (default: params.yaml)")
    join.add_argument("--once", action="store_true", help="leave after the first stage joined")
    join.set_defaults(func=join_command)


def join_command(args: argparse.Namespace) -> int:
    import yaml

    from dividemix.cluster.launch import import_torch_quietly, interrupt
    from dividemix.config import load_config

    import_torch_quietly()  # this process is an agent: its warnings are the agent's (`launch`)
    config = load_config(args.params)
    spread = config.distributed
    if spread.machines < 2:
        raise CliError(f"{args.params}: distributed.machines is {spread.machines}; joining needs 2 or more")
    commands = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    print(f"[join] following {spread.rendezvous}: joining each training stage it launches", flush=True)
    try:
        return follow(spread, commands, args)
    except Exception as exc:  # the agent's handlers stay after its first launch: its SignalException
        if not interrupt(exc):
            raise
    except KeyboardInterrupt:
        pass
    print("[join] interrupted; leaving (the first machine's run stops too if it was running a stage)",
          file=sys.stderr, flush=True)
    return 130


def follow(spread, commands: dict, args: argparse.Namespace) -> int:
    """Join each stage the first machine launches until none comes for join_timeout_s (or --once)."""
    from dividemix.cluster import announce, launch

    done: set[str] = set()
    failed = False
    while (launched := announce.next_announcement(spread, done, spread.join_timeout_s)) is not None:
        done.add(launched.attempt)
        if launched.stage not in launch.TRAINING_STAGES or launched.stage not in commands:
            raise CliError(f"the first machine launched {launched.stage!r}, which this dvc.yaml does not train; "
                           "every machine needs the same code")
        command = commands[launched.stage]["cmd"].split()[2:]  # after "exec python": the script and its arguments
        print(f"[join] {launched.stage}: joining {spread.rendezvous}", flush=True)
        try:
            ending = launch.launch(spread, launched.rendezvous_id(spread.run_id),
                                   [*command, "--params", str(args.params)], writer=False)
        except Exception as exc:  # the rendezvous failed (the launch there ended first, a timeout): one line
            if launch.interrupt(exc):  # Ctrl-C or SIGTERM (the agent forwarded it to the workers)
                raise
            print(f"[join] {launched.stage}: could not join {spread.rendezvous}: {' '.join(str(exc).split())}",
                  file=sys.stderr, flush=True)
            failed = True
        else:
            failed |= report(launched.stage, ending)
        if args.once:
            break
    else:
        print(f"[join] no stage launched for {spread.join_timeout_s} s; leaving", flush=True)
    return 1 if failed and args.once else 0


def report(stage: str, ending) -> bool:
    """The joined stage's ending, one line; whether it failed."""
    from dividemix.cluster import launch

    if ending is not None:
        print(launch.ending_line(stage, ending, None), file=sys.stderr, flush=True)
        return True
    print(f"[join] {stage}: done", flush=True)
    return False
