"""Shared fixtures: tiny digits runs through the library, in a temporary directory."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# A shared fixture that fails is reported once, as the error of the first test that needed it,
# with its cause; every other test that needs it is skipped with a pointer to that error (pytest
# would repeat the same error for each). Fixtures are not counted against the per-test timeout
# (timeout_func_only in pyproject.toml): their own subprocess calls carry their own limits.
_FIXTURE_FAILURES: dict[int, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "setup" or not report.failed or call.excinfo is None:
        return
    first = _FIXTURE_FAILURES.setdefault(id(call.excinfo.value), item.nodeid)
    if first != item.nodeid:  # the same cached exception again: a shared fixture failed before
        report.outcome = "skipped"
        reason = " ".join(str(call.excinfo.value).split())[:200]
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: shared fixture failed in {first}: {reason}")

# The tiers (README, "Tests"): unit tests of the maths and the library (`make test-fast`), stage
# tests that run stages, DVC, Prefect or a whole tiny run (`stage`), end-to-end runs of the full
# default pipeline (`slow`). `make test` runs the first two. A test is a stage test when it needs
# one of these shared runs, or its module or itself is marked `stage`.
STAGE_FIXTURES = {"tiny_run", "digits_data", "prefect_api", "folder_run", "ablated_run", "clothing_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if STAGE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.stage)


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
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]["cmd"].split()[3:]  # after "exec python X"


def run_stage_script(name: str, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run stages/<name>.py as DVC would, from `cwd`."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=900,
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


def run_stages_in_process(root: Path, params: dict, stages: list[str] | None = None) -> None:
    """Each stage's own `body` (its script's code, not a copy), in dvc.yaml's order, in this
    process, on the layout under `root`: `dvc repro` without DVC and without eight interpreters
    starting (seconds instead of half a minute for a tiny run). `root` must hold params' files."""
    from dividemix.config import parse_config, select
    from dividemix.files.layout import Paths

    config = parse_config(params)
    paths = Paths.layout(root)
    for name in stages or list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]):
        module = stage_module(name)
        module.body(config, select(config, module.PARAMS), paths)


def stage_params(name: str) -> list[str]:
    """The parameter keys stages/<name>.py declares (and records in its outputs)."""
    return stage_module(name).PARAMS


def dvc_env(root: Path) -> dict:
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(root / ".dvc-site"),
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
    )


def make_repo(root: Path, params: dict) -> Path:
    """A fresh git + DVC repository holding the pipeline's code and `params`."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".gitignore", root / ".gitignore")  # .dividemix/ (the kept progress) is no commit's
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "labels", root / "labels")  # the noise stage depends on it
    shutil.copytree(REPO / "lists", root / "lists")  # so do download, evaluate and report
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    write_params(root / "params.yaml", params)
    env = dvc_env(root)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, env=env)
    shutil.copytree(REPO / ".dvc/plots", root / ".dvc/plots")  # the plots' template (dvc.yaml: template: epochs)
    return root


def dvc(root: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `root`, which must succeed (its own time limit: fixtures call it too)."""
    result = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, env=dvc_env(root), timeout=timeout)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


OUTPUT_FOLDERS = ("artifacts", "checkpoints", "metrics", "report", "data", "plots", "live")


def checksums(root: Path) -> dict[str, str]:
    """Every output file of the run at `root`, by path: its bytes' digest (an empty folder: none)."""
    import hashlib

    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in OUTPUT_FOLDERS for path in sorted((root / folder).rglob("*")) if path.is_file()
    }


def run_paths(root: Path):
    """The dvc.yaml layout of a run, rooted at `root`."""
    from dividemix.files.layout import Paths

    return Paths.layout(root)


N_SMALL = 200  # the small workspace's training samples (and 50 test images after them)


def small_workspace(**overrides):
    """A Workspace of 200 digits (the real spec and model) with `overrides` of the tiny
    parameters, built in memory from scikit-learn's digits: no file is read or written."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from dividemix.config import parse_config
    from dividemix.datasets.registry import SPECS
    from dividemix.images.batches import DeviceImages
    from dividemix.training.workspace import Workspace

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None]
    cpu = torch.device("cpu")
    spec = SPECS["digits"]
    config = parse_config(tiny_params(**overrides))
    last = config.train.channels_last
    return Workspace(
        config=config,
        device=cpu,
        num_classes=10,
        train_images=DeviceImages(images[:N_SMALL], spec, cpu, channels_last=last),
        noisy_labels=torch.as_tensor(bunch.target[:N_SMALL], dtype=torch.int64),
        test_images=DeviceImages(images[N_SMALL : N_SMALL + 50], spec, cpu, channels_last=last),
        test_labels=torch.as_tensor(bunch.target[N_SMALL : N_SMALL + 50], dtype=torch.int64),
    )


@pytest.fixture(scope="session")
def small_ws():
    """The small workspace at the tiny parameters, built once per session. Read-only: tests that
    change a field take a copy (`dataclasses.replace`, `copy.copy`)."""
    return small_workspace()


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory) -> Path:
    """The digits prepared (data/prepared) with 50% symmetric noise, seed 1 (data/noisy), as the
    download and noise stages make them: built once per session. Read-only: use `digits_run`."""
    from dividemix.datasets.registry import SPECS
    from dividemix.files.atomic import write_json_atomic
    from dividemix.noise.inject import noisy_label_file

    root = tmp_path_factory.mktemp("digits_data")
    paths = run_paths(root)
    SPECS["digits"].prepare(paths.prepared)
    summary = noisy_label_file(dataset="digits", prepared=paths.prepared, out=paths.noisy, mode="sym", rate=0.5, seed=1)
    write_json_atomic(paths.noise_summary, summary)  # as the noise stage does
    return root


def digits_run(digits_data: Path, root: Path) -> Path:
    """A new run folder `root` holding a copy of the shared digits data (data/ and metrics/)."""
    for folder in ("data", "metrics"):
        shutil.copytree(digits_data / folder, root / folder)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, digits_data) -> Path:
    """A complete tiny run (download, noise, warm-up, train, baseline) made through the library.

    Read-only for tests: copy it before changing anything.
    """
    from dividemix.config import parse_config, select
    from dividemix.datasets.sources import manifest, truth_manifest
    from dividemix.files.atomic import write_json_atomic
    from dividemix.run.live import LiveLog
    from dividemix.training.baseline import run_baseline
    from dividemix.training.train import run_train
    from dividemix.training.warmup import run_warmup

    root = digits_run(digits_data, tmp_path_factory.mktemp("tiny_run"))
    config = parse_config(TINY_PARAMS)
    paths = run_paths(root)
    write_json_atomic(paths.sources, manifest(config.data))  # as the check stage does
    write_json_atomic(paths.truth_sources, truth_manifest(config.data))
    # Each stage records the parameters it reads, as the stage scripts do under `dvc repro`.
    run_warmup(config, paths, select(config, stage_params("warmup")), live=LiveLog(paths.live / "warmup"))
    run_train(config, paths, select(config, stage_params("train")), live=LiveLog(paths.live / "train"))
    run_baseline(config, paths, select(config, stage_params("baseline")), live=LiveLog(paths.live / "baseline"))
    return root
