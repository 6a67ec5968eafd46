"""Your own data, end to end: a folder of images with list files (the Clothing1M layout) through
`dvc repro`, under the Clothing1M protocol, with no training truth anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from browser import check_page, needs_chromium
from conftest import dvc, make_repo, stages_run, tiny_params, write_params

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier


def write_digit_folder(base: Path, lists_dir: Path) -> dict[str, Path]:
    """150 digits as 8x8 RGB PNGs: 90 train (a third of the labels shifted by one), 30 val, 30 test.

    The list files go to `lists_dir` (the repository's lists/, a DVC dependency), with
    verified.txt: the true labels of the first 45 training images (a verified subset).
    """
    bunch = load_digits()
    images = (bunch.images * (255 / 16)).astype(np.uint8)
    labels = bunch.target
    root = base / "images"
    root.mkdir(parents=True)
    lists = {"train": [], "val": [], "test": [], "verified": []}
    for i in range(150):
        split = "train" if i < 90 else "val" if i < 120 else "test"
        name = f"{split}/{i:03d}.png"
        (root / split).mkdir(exist_ok=True)
        Image.fromarray(np.repeat(images[i][:, :, None], 3, axis=2)).save(root / name)
        label = int(labels[i])
        if split == "train" and i < 45:
            lists["verified"].append(f"{name} {label}\n")
        if split == "train" and i % 3 == 0:
            label = (label + 1) % 10  # the given training labels are noisy; val and test are clean
        lists[split].append(f"{name} {label}\n")
    paths = {}
    for split, lines in lists.items():
        paths[split] = lists_dir / f"{split}.txt"
        paths[split].write_text("".join(lines))
    return {"root": root, **paths}


def folder_params(images: Path, **keys) -> dict:
    return tiny_params(**{
        "data.dataset": "folder", "data.root": str(images), "data.train_list": "lists/train.txt",
        "data.val_list": "lists/val.txt", "data.test_list": "lists/test.txt", "data.image_size": 8,
        "noise.mode": "none", "train.protocol": "clothing1m", "train.num_batches": 2, "train.batch_size": 16,
    } | keys)


FOLDER_PARAMS = tiny_params()  # make_repo's first params.yaml; replaced once the lists are written


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("folder")
    root = make_repo(base / "project", FOLDER_PARAMS | {})
    files = write_digit_folder(base / "source", root / "lists")
    write_params(root / "params.yaml", folder_params(files["root"]))
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


@pytest.fixture(scope="module")
def verified_run(folder_run):
    """The same run given a verified subset (data.truth_list): only check, evaluate and report rerun."""
    images = folder_run.parent / "source" / "images"
    write_params(folder_run / "params.yaml", folder_params(images, **{"data.truth_list": "lists/verified.txt"}))
    result = dvc(folder_run, "repro")
    assert stages_run(result.stdout) == {"check", "evaluate", "report"}  # training never reads it
    return folder_run


def test_the_verified_subset_gives_division_and_export_figures(verified_run):
    metrics = json.loads((verified_run / "metrics/eval.json").read_text())
    assert metrics["truth"] == "verified"
    # under the Clothing1M protocol each network divides 2 x 16 sampled images: the figures rest on
    # the verified ones among them (<= 32), and say so
    assert 0 < metrics["division_truth_n_last"] <= 32
    from dividemix.files import artifacts

    divisions = artifacts.read_table(verified_run / "artifacts/divisions", "divisions")
    last = divisions[divisions["epoch"] == divisions["epoch"].max()]
    verified = last[last["sample_index"] < 45].groupby("net").size()  # the first 45 are the verified ones
    assert metrics["division_truth_n_last"] == verified.min()
    assert metrics["division_precision_last"] is not None and 0 <= metrics["division_precision_last"] <= 1
    assert 0 < metrics["export_cleaned_n"] <= 45 and 0 <= metrics["export_cleaned_accuracy"] <= 1
    assert abs(metrics["noise_rate_actual"] - 15 / 45) < 1e-9  # i % 3 == 0 of the first 45 were shifted
    markdown = (verified_run / "report/report.md").read_text()
    assert f"{metrics['division_truth_n_last']} samples of the verified subset" in markdown


@needs_chromium
def test_the_report_shows_thumbnails_from_the_store(verified_run, tmp_path):
    from dividemix.files import artifacts

    gallery = artifacts.read_table(verified_run / "artifacts/gallery.parquet", "gallery")
    assert set(gallery["group"]) == {"distrusted", "clean"}
    verified = gallery[gallery["sample_index"] < 45]
    assert verified["true_label"].notna().all() and gallery[gallery["sample_index"] >= 45]["true_label"].isna().all()
    check = check_page(verified_run / "report/index.html", tmp_path / "chrome")
    assert check.problems() == []
    thumbs = [image for image in check.images if image["naturalWidth"] == 72]  # thumbnails.SIDE
    assert len(thumbs) == len(gallery)


def test_an_edited_list_line_makes_dvc_status_report_download(verified_run):
    train = verified_run / "lists/train.txt"
    text = train.read_text()
    try:
        path, label = text.splitlines()[0].split()
        train.write_text(text.replace(f"{path} {label}\n", f"{path} {(int(label) + 1) % 10}\n", 1))  # one label
        status = json.loads(dvc(verified_run, "status", "--json").stdout)
        assert "download" in status and "train" not in status  # the first stage to rerun; the rest follows it
    finally:
        train.write_text(text)
    assert set(json.loads(dvc(verified_run, "status", "--json").stdout)) == {"check"}
