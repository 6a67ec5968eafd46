"""`dividemix join`: this machine joins a run that DVC runs on another one (distributed.machines > 1).

Run it on each other machine, in the repository with the same code, params.yaml and data (the
prepared data: `dvc repro noise` there, or a shared file system), while `dvc repro` runs on the
first one: it joins the training stages' rendezvous in dvc.yaml's order (warmup, baseline, train),
or only those named, with distributed.processes_per_machine processes each. Only the first
machine writes; this one computes its share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dividemix_cli.errors import CliError


def register(subparsers) -> None:
    join = subparsers.add_parser("join", help="join a distributed run DVC runs on another machine",
                                 description=__doc__.split("\n\n")[0])
    join.add_argument("stages", nargs="*", metavar="STAGE",
                      help="the training stages to join, in order (default: warmup baseline train)")
    join.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file (default: params.yaml)")
    join.set_defaults(func=join_command)


def join_command(args: argparse.Namespace) -> int:
    import yaml

    from dividemix.cluster import launch
    from dividemix.config import load_config

    config = load_config(args.params)
    if config.distributed.machines < 2:
        raise CliError(f"{args.params}: distributed.machines is {config.distributed.machines}; joining needs 2 or more")
    commands = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    stages = args.stages or list(launch.TRAINING_STAGES)
    unknown = [stage for stage in stages if stage not in launch.TRAINING_STAGES]
    if unknown:
        raise CliError(f"cannot join {', '.join(unknown)}; allowed: {', '.join(launch.TRAINING_STAGES)}")
    for stage in stages:
        command = commands[stage]["cmd"].split()[2:]  # after "exec python": the script and its arguments
        print(f"[join] {stage}: joining {config.distributed.rendezvous}", flush=True)
        try:
            ending = launch.launch(config.distributed, stage, [*command, "--params", str(args.params)], writer=False)
        except Exception as exc:  # the rendezvous failed (nobody there, a timeout): one line, not a traceback
            raise CliError(f"{stage}: could not join {config.distributed.rendezvous}: {exc}") from None
        if ending is not None:
            print(launch.ending_line(stage, ending, None), file=sys.stderr)
            return 1
    return 0
