"""Your own data, end to end: a folder of images with list files (the Clothing1M layout) through
`dvc repro`, under the Clothing1M protocol, with no training truth anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from conftest import dvc, make_repo, stages_run, tiny_params


def write_digit_folder(base: Path) -> dict[str, Path]:
    """150 digits as 8x8 RGB PNGs: 90 train (a third of the labels shifted by one), 30 val, 30 test."""
    bunch = load_digits()
    images = (bunch.images * (255 / 16)).astype(np.uint8)
    labels = bunch.target
    root = base / "images"
    root.mkdir(parents=True)
    lists = {"train": [], "val": [], "test": []}
    for i in range(150):
        split = "train" if i < 90 else "val" if i < 120 else "test"
        name = f"{split}/{i:03d}.png"
        (root / split).mkdir(exist_ok=True)
        Image.fromarray(np.repeat(images[i][:, :, None], 3, axis=2)).save(root / name)
        label = int(labels[i])
        if split == "train" and i % 3 == 0:
            label = (label + 1) % 10  # the given training labels are noisy; val and test are clean
        lists[split].append(f"{name} {label}\n")
    paths = {}
    for split, lines in lists.items():
        paths[split] = base / f"{split}.txt"
        paths[split].write_text("".join(lines))
    return {"root": root, **paths}


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("folder")
    files = write_digit_folder(base / "source")
    params = tiny_params(**{
        "data.dataset": "folder", "data.root": str(files["root"]), "data.train_list": str(files["train"]),
        "data.val_list": str(files["val"]), "data.test_list": str(files["test"]), "data.image_size": 8,
        "noise.mode": "none", "train.protocol": "clothing1m", "train.num_batches": 2, "train.batch_size": 16,
    })
    root = make_repo(base / "project", params)
    result = dvc(root, "repro")
    assert stages_run(result.stdout) == {"check", "download", "noise", "warmup", "baseline", "train", "evaluate", "report"}
    return root


def test_folder_data_runs_through_the_pipeline_without_truth(folder_run):
    prepared = folder_run / "data/prepared"
    assert not (prepared / "train_truth.npy").exists()
    metrics = json.loads((folder_run / "metrics/eval.json").read_text())
    # Truth-based figures are unknown, never made up; accuracies come from the clean test list.
    for key in ("division_auc_last", "division_precision_last", "division_recall_last", "noise_rate_actual"):
        assert metrics[key] is None, key
    assert 0.0 <= metrics["test_acc_best"] <= 1.0
    noise = json.loads((folder_run / "metrics/noise.json").read_text())
    assert noise["n_wrong"] is None and noise["noise_rate_actual"] is None


def test_clothing1m_protocol_reports_the_best_validation_weights(folder_run):
    metrics = json.loads((folder_run / "metrics/eval.json").read_text())
    assert metrics["test_acc_best_val"] is not None and 0.0 <= metrics["test_acc_best_val"] <= 1.0
    markdown = (folder_run / "report/report.md").read_text()
    assert "Test accuracy of the best-validation weights" in markdown
    assert "training truth is not known" in markdown
