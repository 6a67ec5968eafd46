"""DVC experiments, as the flows run and read them: `dvc exp run --temp` in a task, the overrides a
run is given (checked against the config schema first), and `dvc exp show`'s records.

An experiment runs in DVC's own temporary copy of the repository (`--temp`), so it never touches
the checked-out workspace, reuses every stage DVC's cache holds, and ends as an ordinary DVC
experiment of the repository (`dvc exp show`, `dvc exp apply NAME`).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dividemix_flows import outputs
from dividemix_flows.stream import command_env, stage_error, stream_command

KEY = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*$")


class ExperimentFailed(RuntimeError):
    """An experiment did not finish; the message names it and the stage's error."""


class OverridesRefused(ValueError):
    """Overrides the config schema refuses; the message has one line per problem."""


def git_head(repo: str | Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(
            f"{repo}: an experiment needs a Git repository with a commit (DVC experiments are based on one): "
            f"{stage_error(result.stderr.splitlines())}"
        )
    return result.stdout.strip()


def dvc(repo: str | Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, env=command_env())


# ------------------------------------------------------------------------------ overrides
def override_errors(params_file: str | Path, overrides: dict[str, Any]) -> list[str]:
    """Every problem of `overrides` (dotted keys -> values) applied over `params_file`: one line
    each, naming the key; empty when the stages would accept them."""
    from dividemix.config import config_errors, read_params

    params_file = Path(params_file)
    raw = read_params(params_file) or {}  # as DVC reads it (YAML 1.2)
    errors = []
    for key, value in overrides.items():
        if not isinstance(key, str) or not KEY.match(key):
            errors.append(f"{key!r}: a key is SECTION.NAME of params.yaml (e.g. noise.rate)")
        elif not isinstance(raw.get(key.split(".")[0], {}), dict):
            errors.append(f"{key}: {key.split('.')[0]} is not a section of {params_file.name}")
        else:
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
    if errors:
        return errors
    return [line.removeprefix("overrides: ") for line in config_errors(raw, source="overrides")]


def override_text(value: Any) -> str:
    """A JSON value as `dvc exp run -S key=VALUE` writes it back (Hydra's grammar: strings quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def experiment_name(text: str) -> str:
    """A DVC experiment name (a Git ref part) from a flow run's name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return name[:100] or "custom-run"


# ------------------------------------------------------------------------------------ running
@task(persist_result=False, cache_policy=NO_CACHE)  # DVC decides what is up to date
def dvc_experiment(
    repo: str, name: str, settings: dict[str, str], baseline: str, push: str | None = None, on_line=None,
) -> dict[str, Any]:
    """`dvc exp run --temp -n NAME -S key=value ...` in `repo` (this worker's clone).

    `settings` are the -S values as text; `on_line` also gets every line of its output (the
    progress artifacts); `push` sends the finished experiment to that Git remote.
    """
    logger = get_run_logger()
    head = git_head(repo)
    if head != baseline:
        raise ExperimentFailed(
            f"{name}: the repository at {repo} on {socket.gethostname()} is at commit {head[:12]}, the run's "
            f"baseline is {baseline[:12]} (there: git fetch && git checkout {baseline[:12]})"
        )
    command = ["dvc", "--wait-for-lock", "exp", "run", "--temp", "-n", name]
    for key, value in settings.items():
        command += ["-S", f"{key}={value}"]
    logger.info("%s: %s", name, " ".join(command))

    def line(stream: str, text: str) -> None:
        logger.info("%s", text)
        if on_line is not None:
            on_line(text)

    start = time.perf_counter()
    code, stderr = stream_command(command, cwd=repo, on_line=line)
    if code != 0:
        raise ExperimentFailed(f"{name} ({settings_text(settings)}): {stage_error(stderr)}")
    if push:
        pushed = dvc(repo, "exp", "push", push, name)
        if pushed.returncode != 0:
            raise ExperimentFailed(f"{name}: ran, but dvc exp push {push} failed: {stage_error(pushed.stderr.splitlines())}")
    return {"seconds": round(time.perf_counter() - start, 1), "host": socket.gethostname()}


def settings_text(settings: dict[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in settings.items())


# -------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Experiment:
    """One experiment as `dvc exp show` lists it: dotted parameters and the evaluate stage's metrics."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]


def shown_experiments(repo: str | Path) -> list[Experiment]:
    """Every named experiment of the repository (`dvc exp show --json`, all baselines' children)."""
    result = dvc(repo, "exp", "show", "--json", "--all-commits")
    if result.returncode != 0:
        raise ValueError(f"dvc exp show failed: {stage_error(result.stderr.splitlines())}")
    found = []
    for baseline in json.loads(result.stdout):
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                data = rev.get("data") or {}
                if rev.get("name") and data:
                    found.append(Experiment(rev["name"], _dotted(data), _metrics(data)))
    return found


def _dotted(data: dict) -> dict[str, Any]:
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    return {f"{section}.{key}": value for section, values in params.items() if isinstance(values, dict)
            for key, value in values.items()}


def _metrics(data: dict) -> dict[str, Any]:
    return ((data.get("metrics") or {}).get(outputs.EVAL_JSON) or {}).get("data") or {}


def experiment_metrics(repo: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """{name: metrics/eval.json of that experiment}; empty (and a warning) when DVC cannot list them:
    the experiments exist already, `dvc exp show` tells the rest."""
    try:
        shown = shown_experiments(repo)
    except (ValueError, json.JSONDecodeError) as exc:
        get_run_logger().warning(f"dvc exp show failed; no metrics in the summary: {exc}")
        return {}
    return {experiment.name: experiment.metrics for experiment in shown if experiment.name in names}
