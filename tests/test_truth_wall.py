"""The method never sees the truth: training runs with the true training labels removed."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import tiny_params
from dividemix.config import parse_config, select
from dividemix.data import TRAIN_TRUTH
from dividemix.engine import Paths, run_baseline, run_train, run_warmup


def test_warmup_train_and_baseline_run_without_the_true_labels(tiny_run: Path, tmp_path: Path):
    shutil.copytree(tiny_run / "data", tmp_path / "data")
    (tmp_path / "data/prepared" / TRAIN_TRUTH).unlink()  # any attempt to read the truth now fails
    params = tiny_params(**{"train.epochs": 3})
    config = parse_config(params)
    paths = Paths(
        prepared=tmp_path / "data/prepared",
        noisy=tmp_path / "data/noisy/labels.parquet",
        warmup_checkpoint=tmp_path / "checkpoints/warmup/nets.pt",
        warmup_artifacts=tmp_path / "artifacts/warmup",
        train_checkpoint=tmp_path / "checkpoints/train/last.pt",
        artifacts=tmp_path / "artifacts",
        baseline=tmp_path / "artifacts/baseline",
    )
    recorded = select(config, ["train.epochs"])
    run_warmup(config, paths, recorded)
    run_train(config, paths, recorded)
    run_baseline(config, paths, recorded)
    assert (tmp_path / "artifacts/divisions/epoch_002.parquet").exists()
