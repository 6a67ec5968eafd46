"""The pipeline as a user drives it: `dvc repro` in a fresh repository, caching, resume, determinism."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import REPO, TINY_PARAMS, tiny_params, write_params
from dividemix import artifacts
from dividemix.evaluation import RunArtifacts, accuracy_curves, clean_mask, division_quality, summary_metrics

ARTIFACT_SETS = ["divisions", "mixtures", "losses", "epochs"]


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
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "labels", root / "labels")  # the noise stage depends on it
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    write_params(root / "params.yaml", params)
    env = dvc_env(root)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, env=env)
    return root


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, env=dvc_env(root))
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def read_artifacts(root: Path) -> dict[str, pd.DataFrame]:
    tables = {name: artifacts.read_table(root / "artifacts" / name, name) for name in ARTIFACT_SETS}
    tables["warmup_epochs"] = artifacts.read_table(root / "artifacts/warmup/epochs.parquet", "epochs")
    tables["baseline"] = artifacts.read_table(root / "artifacts/baseline/epochs.parquet", "baseline_epochs")
    return tables


def assert_same_artifacts(a: Path, b: Path) -> None:
    left, right = read_artifacts(a), read_artifacts(b)
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def repro_repo(tmp_path_factory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("repo") / "project", TINY_PARAMS)
    result = dvc(root, "repro")
    assert stages_run(result.stdout) == {"download", "noise", "warmup", "baseline", "train", "evaluate", "report"}
    return root


def test_repro_writes_every_artifact_with_its_schema(repro_repo: Path):
    division = pd.read_parquet(repro_repo / "artifacts/divisions")  # readable whole, as documented
    assert list(division.columns) == artifacts.DIVISIONS.names
    n_train = 1437
    epochs = TINY_PARAMS["train"]["epochs"] - TINY_PARAMS["train"]["warmup_epochs"]
    assert len(division) == epochs * 2 * n_train
    assert set(division["net"]) == {1, 2}
    losses = pd.read_parquet(repro_repo / "artifacts/losses")
    assert list(losses.columns) == artifacts.LOSSES.names
    assert (losses["n_labeled"] + losses["n_unlabeled"] == n_train).all()
    metrics = json.loads((repro_repo / "metrics/eval.json").read_text())
    assert set(metrics) == {
        "test_acc_best", "test_acc_last", "test_acc_last10", "ce_test_acc_best", "ce_test_acc_last",
        "division_auc_last", "division_precision_last", "division_recall_last", "noise_rate_actual",
        "test_acc_best_val",
    }
    assert metrics.pop("test_acc_best_val") is None  # digits has no validation set
    for key, value in metrics.items():
        assert 0.0 <= value <= 1.0, key
    assert abs(metrics["noise_rate_actual"] - 0.45) < 0.03  # 50% sym noise keeps 1/10 of the picked labels
    accuracy = pd.read_csv(repro_repo / "plots/accuracy.csv")
    assert list(accuracy["epoch"]) == list(range(TINY_PARAMS["train"]["epochs"]))
    assert (repro_repo / "report/index.html").exists() and (repro_repo / "report/report.md").exists()
    shown = dvc(repro_repo, "metrics", "show", "--json")
    assert "test_acc_best" in shown.stdout


def test_repro_matches_the_library_run_bit_for_bit(repro_repo: Path, tiny_run: Path):
    """Same parameters, same artifacts and metrics: the DVC run and the in-process run agree exactly (CPU)."""
    assert_same_artifacts(repro_repo, tiny_run)
    for checkpoint in ("checkpoints/warmup/nets.pt", "checkpoints/train/last.pt"):  # byte for byte
        assert (repro_repo / checkpoint).read_bytes() == (tiny_run / checkpoint).read_bytes(), checkpoint
    run = RunArtifacts(tiny_run / "artifacts")
    clean = clean_mask(tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet")
    metrics = summary_metrics(accuracy_curves(run), division_quality(run, clean), clean)
    assert metrics == json.loads((repro_repo / "metrics/eval.json").read_text())


def test_second_repro_is_a_no_op(repro_repo: Path):
    result = dvc(repro_repo, "repro")
    assert stages_run(result.stdout) == set()


def test_changing_a_parameter_reruns_only_what_depends_on_it(repro_repo: Path):
    write_params(repro_repo / "params.yaml", tiny_params(**{"train.lambda_u": 10.0}))
    assert stages_run(dvc(repro_repo, "repro").stdout) == {"train", "evaluate", "report"}
    write_params(repro_repo / "params.yaml", tiny_params(**{"train.lambda_u": 10.0, "noise.rate": 0.3}))
    assert stages_run(dvc(repro_repo, "repro").stdout) == {"noise", "warmup", "baseline", "train", "evaluate", "report"}
    metrics = json.loads((repro_repo / "metrics/eval.json").read_text())
    assert abs(metrics["noise_rate_actual"] - 0.27) < 0.03


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def test_sigkill_during_train_then_repro_resumes_to_identical_results(tmp_path: Path, tiny_run: Path):
    """Kill `dvc repro` after the first DivideMix epoch; the rerun resumes and matches an uninterrupted run."""
    root = make_repo(tmp_path / "killed", TINY_PARAMS)
    dvc(root, "repro", "warmup")
    checkpoint = root / "checkpoints/train/last.pt"
    first = TINY_PARAMS["train"]["warmup_epochs"]
    process = subprocess.Popen(
        ["dvc", "repro", "train"], cwd=root, env=dvc_env(root),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while _checkpoint_epoch(checkpoint) < first and time.monotonic() < deadline:
        assert process.poll() is None, "train finished before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _checkpoint_epoch(checkpoint) == first, "not killed between the two DivideMix epochs"

    result = dvc(root, "repro", "train")
    assert "train" in stages_run(result.stdout)
    assert f"resuming after epoch {first}" in result.stdout + result.stderr
    for name in ARTIFACT_SETS:  # the uninterrupted reference: the same parameters, run in-process
        pd.testing.assert_frame_equal(
            artifacts.read_table(root / "artifacts" / name, name),
            artifacts.read_table(tiny_run / "artifacts" / name, name),
            check_exact=True, obj=name,
        )
    state = torch.load(checkpoint, weights_only=True)  # loads without unpickling code
    assert state["epoch"] == TINY_PARAMS["train"]["epochs"] - 1 and set(state["nets"]) == {"1", "2"}


def test_a_train_checkpoint_made_by_other_code_is_not_resumed(tmp_path: Path, tiny_run: Path, monkeypatch):
    """DVC reruns `train` when its code changes; the persisted checkpoint must then be discarded,
    or the finished run would be "resumed" and the old code's epochs kept."""
    import io

    from conftest import run_paths, stage_params
    from dividemix.config import parse_config, select
    from dividemix.training import checkpoint
    from dividemix.training.train import run_train

    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    config = parse_config(TINY_PARAMS)
    params = select(config, stage_params("train"))
    epochs = TINY_PARAMS["train"]["epochs"] - TINY_PARAMS["train"]["warmup_epochs"]

    same_code = io.StringIO()
    run_train(config, run_paths(root), params, stream=same_code)
    assert f"[train] {epochs}/{epochs}" not in same_code.getvalue()  # finished: nothing to redo

    monkeypatch.setattr(checkpoint, "training_code_digest", lambda: {"engine": "other code"})
    other_code = io.StringIO()
    run_train(config, run_paths(root), params, stream=other_code)
    assert f"[train] 1/{epochs}" in other_code.getvalue() and "resuming" not in other_code.getvalue()
    assert_same_artifacts(root, tiny_run)  # (the code did not really change: same results)
