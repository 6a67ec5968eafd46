"""Experiments the way researchers run them: seeds, the paper's table, `run -S`, `--version`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, dvc_env, write_params

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier

# Two settings x two seeds, each run as its preset (like for like with the paper's cell); "last 10"
# and "best" per experiment, as fractions.
def _preset(name: str) -> dict:
    from dividemix.paper.presets import get_preset

    return get_preset(name).overrides


EXPERIMENTS = {
    "c10-sym50-s0": (_preset("cifar10-sym50") | {"noise.seed": 1, "train.seed": 123}, 0.941, 0.951),
    "c10-sym50-s1": (_preset("cifar10-sym50") | {"noise.seed": 2, "train.seed": 124}, 0.945, 0.953),
    "c10-sym80-s0": (_preset("cifar10-sym80") | {"noise.seed": 1, "train.seed": 123}, 0.920, 0.930),
    "c10-sym80-s1": (_preset("cifar10-sym80") | {"noise.seed": 2, "train.seed": 124}, 0.910, 0.928),
}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "dividemix_cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def saved_experiments(tmp_path_factory) -> Path:
    """A repository with four saved DVC experiments (params and metrics only: no training)."""
    root = tmp_path_factory.mktemp("table") / "project"
    root.mkdir()
    env = dvc_env(root)
    (root / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: 'true'\n    params:\n      - params.yaml:\n"
        "    metrics:\n      - metrics/eval.json:\n          cache: false\n"
    )
    (root / "metrics").mkdir()
    base = yaml.safe_load((REPO / "params.yaml").read_text())

    def save(params: dict, last10: float, best: float) -> None:
        raw = json.loads(json.dumps(base))
        for key, value in params.items():
            section, name = key.split(".")
            raw[section][name] = value
        write_params(root / "params.yaml", raw)
        (root / "metrics/eval.json").write_text(json.dumps({"test_acc_last10": last10, "test_acc_best": best}))

    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, env=env, check=True)
    save({}, 0.5, 0.5)
    for command in (["dvc", "commit", "-f", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(command, cwd=root, env=env, check=True)
    for name, (params, last10, best) in EXPERIMENTS.items():
        save(params, last10, best)
        subprocess.run(["dvc", "exp", "save", "-q", "-n", name], cwd=root, env=env, check=True)
    return root


def test_table_gives_mean_and_std_over_seeds_with_the_papers_number(saved_experiments: Path, tmp_path: Path):
    result = cli("table", "--prefix", "c10-", "--repo", str(saved_experiments), "--out", str(tmp_path / "tables"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row50 = next(line for line in lines if line.startswith("| cifar10 sym 50%"))
    row80 = next(line for line in lines if line.startswith("| cifar10 sym 80%"))
    # mean ± sample std of (94.1, 94.5) and (95.1, 95.3); the paper's CIFAR-10 sym 50% cell: 94.4 / 94.6
    assert row50.split(" | ")[1:6] == ["2", "94.30 ± 0.28", "94.40", "95.20 ± 0.14", "94.60"], row50
    assert row80.split(" | ")[1:6] == ["2", "91.50 ± 0.71", "92.90", "92.90 ± 0.14", "93.20"], row80
    assert lines.index(row50) < lines.index(row80)  # the paper's order: by rate
    assert row50.split(" | ")[6] == "like for like"  # each run is its preset's
    csv = (tmp_path / "tables/table.csv").read_text().splitlines()
    assert csv[0].startswith("setting,seeds,last10_mean,last10_std,paper_last")
    assert "94.3000,0.2828" in csv[1]
    page = (tmp_path / "tables/table.html").read_text()
    assert "94.30 ± 0.28" in page and page.startswith("<!DOCTYPE html>")


def test_table_of_named_experiments_and_of_unknown_ones(saved_experiments: Path):
    one = cli("table", "c10-sym80-s0", "--repo", str(saved_experiments))
    assert one.returncode == 0 and "| cifar10 sym 80% | 1 | 92.00 |" in one.stdout, one.stdout
    missing = cli("table", "no-such-exp", "--repo", str(saved_experiments))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no-such-exp" in missing.stderr


def test_seeds_vary_both_seeds_together_from_the_parameters_as_they_are(tmp_path: Path):
    from dividemix_flows.grid import grid_points, parse_grid, with_seeds

    params = write_params(tmp_path / "params.yaml", yaml.safe_load((REPO / "params.yaml").read_text()))
    points = with_seeds(grid_points(parse_grid(["noise.rate=0.2,0.8"])), params, 3)
    assert points == [
        {"noise.rate": rate, "noise.seed": str(1 + k), "train.seed": str(123 + k)}
        for rate in ("0.2", "0.8") for k in range(3)
    ]
    only_training = with_seeds([{}], params, 2, ("train.seed",))
    assert only_training == [{"train.seed": "123"}, {"train.seed": "124"}]
    with pytest.raises(ValueError, match="--seeds varies it"):
        with_seeds([{"train.seed": "5"}], params, 2)


def test_preset_queue_with_seeds_names_each_repeat(tmp_path: Path):
    result = cli("preset", "queue", "--table", "cifar", "--seeds", "2", "--dry-run", "--params", str(REPO / "params.yaml"))
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("dvc exp run")]
    assert len(commands) == 2 * 9  # nine CIFAR cells, two seeds each
    first, second = commands[:2]
    assert "-n cifar10-sym20-seed0" in first and "noise.seed=1" in first and "train.seed=123" in first
    assert "-n cifar10-sym20-seed1" in second and "noise.seed=2" in second and "train.seed=124" in second


def test_run_with_a_refused_override_is_one_line_before_anything_runs(tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil_params = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(shutil_params)
    result = cli("run", "--repo", str(tmp_path), "-S", "noise.rate=1.5", "-S", "train.lr=-1")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "noise.rate: Input should be less than or equal to 1 (got 1.5)" in line and "train.lr" in line
    assert (tmp_path / "params.yaml").read_text() == shutil_params


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == "dividemix 0.1.0"
