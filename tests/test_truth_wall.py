"""The method never sees the truth: training runs with the true training labels removed."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import run_paths, tiny_params
from dividemix.config import parse_config, select
from dividemix.datasets.prepared import TRAIN_TRUTH
from dividemix.training.baseline import run_baseline
from dividemix.training.train import run_train
from dividemix.training.warmup import run_warmup


def test_warmup_train_and_baseline_run_without_the_true_labels(tiny_run: Path, tmp_path: Path):
    shutil.copytree(tiny_run / "data", tmp_path / "data")
    (tmp_path / "data/prepared" / TRAIN_TRUTH).unlink()  # any attempt to read the truth now fails
    params = tiny_params(**{"train.epochs": 3})
    config = parse_config(params)
    paths = run_paths(tmp_path)
    recorded = select(config, ["train.epochs"])
    run_warmup(config, paths, recorded)
    run_train(config, paths, recorded)
    run_baseline(config, paths, recorded)
    assert (tmp_path / "artifacts/divisions/epoch_002.parquet").exists()
