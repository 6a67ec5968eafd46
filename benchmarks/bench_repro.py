"""Time an end-to-end `dvc repro` of the pipeline in a fresh repository, then a no-op second one.

Run from the repository root::

    .venv/bin/python benchmarks/bench_repro.py                  # the default parameters
    .venv/bin/python benchmarks/bench_repro.py --target train   # `dvc repro train`

first run     an end-to-end `dvc repro` in a fresh temporary git + DVC repository (a copy of
              dvc.yaml, `--params` as params.yaml, stages/, pipeline/, labels/ and lists/), with
              DVC_NO_ANALYTICS=1, DVC_SITE_CACHE_DIR inside it and .venv/bin first on PATH. The
              stages import the copied `pipeline/` (PYTHONPATH), so the code DVC hashes is the code
              that runs. Each stage's line: from its "Running stage" banner to the next one (DVC's
              hashing and caching of its outputs included; the last stage to the end).
second run    the same command again: nothing changed, so every stage is skipped (the cost of
              DVC's checks alone).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO, machine_line, peak_rss_mb, workdir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="parameter file")
    parser.add_argument("--target", default=None, help="stage to reproduce (default: the whole pipeline)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    return parser.parse_args(argv)


def make_dvc_repo(root: Path, params: Path) -> dict[str, str]:
    """A fresh git + DVC repository holding a copy of the pipeline; returns the environment to run in."""
    for name in ("dvc.yaml",):
        shutil.copy2(REPO / name, root / name)
    shutil.copy2(params, root / "params.yaml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    # labels/: a dependency of the noise stage; lists/: of download, evaluate and report
    for name in ("stages", "pipeline", "labels", "lists"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    env = dict(
        os.environ,
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(root / ".dvc-site-cache"),
        PATH=f"{REPO / '.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(root / "pipeline"),  # run the copied library, the one DVC hashes
    )
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, env=env, check=True)
    shutil.copytree(REPO / ".dvc/plots", root / ".dvc/plots")  # the plots' template (dvc.yaml: template: epochs)
    return env


@dataclass
class CommandTiming:
    rc: int
    seconds: float
    stages: dict[str, float]  # seconds from each "Running stage 'X'" line to the next line of that kind


def timed_command(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> CommandTiming:
    """Run `command`, its output into `log`; time it, and each DVC stage by when its banner appeared."""
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        for line in process.stdout:
            out.write(line)
            if line.startswith("Running stage '"):
                marks.append((line.split("'")[1], time.perf_counter()))
        rc = process.wait()
    end = time.perf_counter()
    ends = [t for _, t in marks[1:]] + [end]
    stages = {name: stop - begin for (name, begin), stop in zip(marks, ends)}
    return CommandTiming(rc, end - start, stages)


def main(argv: list[str] | None = None) -> int:
    """Time `dvc repro` twice in a fresh repository; returns the first run's exit status."""
    args = parse_args(argv)
    command = ["dvc", "repro", *([args.target] if args.target else [])]
    with workdir(args.keep) as root:
        env = make_dvc_repo(root, args.params)
        print(f"machine: {machine_line()}", flush=True)
        first = timed_command(command, root, env, root / "repro_1.log")
        if first.rc != 0:
            print(f"`{' '.join(command)}` failed (exit {first.rc}); its log ends:")
            print("\n".join((root / "repro_1.log").read_text().splitlines()[-30:]))
            return first.rc
        second = timed_command(command, root, env, root / "repro_2.log")
        print("\n=== dvc repro ===")
        print(f"command                 {' '.join(command)} (params {args.params}, in a fresh git+dvc copy)")
        print(f"first run (everything)  {first.seconds:8.2f} s")
        for name, seconds in first.stages.items():
            print(f"  {name:<21} {seconds:8.2f} s")
        print(f"second run (no-op)      {second.seconds:8.2f} s   exit {second.rc}, stages run: {len(second.stages)}")
        print(f"peak RSS of a stage     {peak_rss_mb(resource.RUSAGE_CHILDREN):8.1f} MB   (largest child process)")
        print(f"machine                 {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
