"""Shared fixtures: tiny digits runs through the library, in a temporary directory."""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Small enough for seconds on 2 cores, large enough to exercise every step (2 warm-up + 2 DivideMix
# epochs). Every other key keeps its params.yaml value, so a stage never misses a parameter.
TINY_OVERRIDES = {
    "train": {
        "epochs": 4,
        "warmup_epochs": 2,
        "lr_drop_epoch": 3,
        "rampup_epochs": 16,
        "device": "cpu",
    },
}


def _tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY_OVERRIDES.items():
        params[section].update(values)
    return params


TINY_PARAMS = _tiny_params()


def tiny_params(**overrides) -> dict:
    """TINY_PARAMS with dotted overrides, e.g. tiny_params(**{"noise.rate": 0.2})."""
    params = copy.deepcopy(TINY_PARAMS)
    for key, value in overrides.items():
        section, name = key.split(".")
        params[section][name] = value
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def dvc_stage_args(name: str) -> list[str]:
    """The arguments dvc.yaml gives stages/<name>.py (its `--FIELD PATH` pairs)."""
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]["cmd"].split()[2:]


def run_stage_script(name: str, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run stages/<name>.py as DVC would, from `cwd`."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), *args],
        cwd=cwd, capture_output=True, text=True, env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"stage {name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stage_module(name: str):
    """stages/<name>.py as a module (its PARAMS and PATHS), without running the stage."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stage_params(name: str) -> list[str]:
    """The parameter keys stages/<name>.py declares (and records in its outputs)."""
    return stage_module(name).PARAMS


def run_paths(root: Path):
    """The dvc.yaml layout of a run, rooted at `root`."""
    from dividemix.layout import Paths

    return Paths.layout(root)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A complete tiny run (download, noise, warm-up, train, baseline) made through the library.

    Read-only for tests: copy it before changing anything.
    """
    from dividemix.config import parse_config, select
    from dividemix.datasets.registry import SPECS
    from dividemix.noise import noisy_label_file
    from dividemix.training.baseline import run_baseline
    from dividemix.training.train import run_train
    from dividemix.training.warmup import run_warmup

    root = tmp_path_factory.mktemp("tiny_run")
    config = parse_config(TINY_PARAMS)
    paths = run_paths(root)
    SPECS["digits"].prepare(paths.prepared)
    noisy_label_file(dataset="digits", prepared=paths.prepared, out=paths.noisy, mode="sym", rate=0.5, seed=1)
    # Each stage records the parameters it reads, as the stage scripts do under `dvc repro`.
    run_warmup(config, paths, select(config, stage_params("warmup")))
    run_train(config, paths, select(config, stage_params("train")))
    run_baseline(config, paths, select(config, stage_params("baseline")))
    return root
