"""Bad parameters end to end: a stage script exits 2 with one line on stderr naming the key, and
leaves a previous run's outputs exactly as they were (nothing created, changed or removed).

Each case is a real subprocess (~2-3 s of imports), so all of them start together in a module
fixture (a few at a time) and the tests only read the results.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import dvc_stage_args, run_stage_script, tiny_params, write_params

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier

STAGE_ARGS = {stage: dvc_stage_args(stage) for stage in ("noise", "train")}


def with_top_level(**extra) -> dict:
    params = tiny_params()
    params.update(extra)
    return params


# id -> (stage, params, dotted key the error must name)
CASES = {
    "unknown-key-in-section": ("train", tiny_params(**{"train.learning_rate": 0.02}), "train.learning_rate"),
    # A typo in a section this stage does not read still stops it (the whole file is validated).
    "unknown-top-level-key": ("noise", with_top_level(trian={"lr": 0.02}), "trian"),
    "noise-rate-1.5": ("noise", tiny_params(**{"noise.rate": 1.5}), "noise.rate"),
    "noise-rate-string": ("noise", tiny_params(**{"noise.rate": "0.5"}), "noise.rate"),
    "dataset-mnist": ("noise", tiny_params(**{"data.dataset": "mnist"}), "data.dataset"),
    "noise-mode-pairflip": ("noise", tiny_params(**{"noise.mode": "pairflip"}), "noise.mode"),
    "p-threshold-1.0": ("train", tiny_params(**{"train.p_threshold": 1.0}), "train.p_threshold"),
    "arch-vgg": ("train", tiny_params(**{"model.arch": "vgg"}), "model.arch"),
    "warmup-equals-epochs": (
        "train", tiny_params(**{"train.warmup_epochs": 30, "train.epochs": 30}), "train.warmup_epochs",
    ),
    "lr-negative": ("train", tiny_params(**{"train.lr": -1}), "train.lr"),
    "batch-size-0": ("train", tiny_params(**{"train.batch_size": 0}), "train.batch_size"),
}
CONTROL = "control-valid-noise"  # valid parameters: proves the harness sees a rewritten output


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under `root`: kind, size, mtime and a digest of the bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel] = ("dir",)
        else:
            stat = path.stat()
            out[rel] = ("file", stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def prepare(tiny_run: Path, dest: Path, params: dict) -> Path:
    """A folder holding a previous run's outputs (copied from the tiny run) and the new params.yaml."""
    dest.mkdir(parents=True)
    for part in ("data", "checkpoints", "artifacts"):
        shutil.copytree(tiny_run / part, dest / part)
    (dest / "metrics").mkdir()
    (dest / "metrics/noise.json").write_text(json.dumps({"previous": True}) + "\n")
    write_params(dest / "params.yaml", params)
    return dest


@pytest.fixture(scope="module")
def results(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    jobs = {name: (stage, prepare(tiny_run, base / name, params)) for name, (stage, params, _) in CASES.items()}
    jobs[CONTROL] = ("noise", prepare(tiny_run, base / CONTROL, tiny_params(**{"noise.seed": 2})))
    before = {name: snapshot(folder) for name, (_, folder) in jobs.items()}

    def launch(item):
        name, (stage, folder) = item
        return name, run_stage_script(stage, ["--params", "params.yaml", *STAGE_ARGS[stage]], folder, check=False)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
        done = dict(pool.map(launch, jobs.items()))
    return {name: (done[name], before[name], snapshot(folder)) for name, (_, folder) in jobs.items()}


def names_key(message: str, key: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message) is not None


@pytest.mark.parametrize("name", list(CASES))
def test_bad_parameter_stops_the_stage_cleanly(results, name):
    stage, _, key = CASES[name]
    result, before, after = results[name]
    assert result.returncode == 2, f"{result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {stage}: "), lines[0]
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr
    # Nothing was created, changed or removed (outputs of the previous run included).
    assert after == before
    assert names_key(lines[0], key), lines[0]


def test_control_valid_parameters_rewrite_the_outputs(results):
    result, before, after = results[CONTROL]
    assert result.returncode == 0, result.stderr
    changed = {rel for rel in before if before[rel] != after.get(rel)}
    assert {"data/noisy/labels.parquet", "metrics/noise.json"} <= changed
    assert set(after) == set(before)  # atomic writes leave no temporary file behind
