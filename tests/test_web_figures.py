"""What the web experiments rest on, by hand: top-1 and top-5 of each network and of the ensemble,
the EPOCHS schema that carries them, the reference's evaluation crop to the pixel, the flip switch,
an all-clean epoch on the WebVision crop, the division figures on a verified subset, and the
paper's numbers beside the run's own in the report and the table (fp32 figures, the holes found by
breaking the code: test_reported_figures.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as tvf

from conftest import N_SMALL, small_workspace, tiny_params
from dividemix.config import ConfigError, parse_config
from dividemix.datasets.prepared import eval_crop_corners, images_path, read_meta, spec_from_meta
from dividemix.datasets.registry import prepare_dataset
from dividemix.files import artifacts
from dividemix.images.batches import DeviceImages
from dividemix.images.streamed import StreamedImages
from dividemix.judging.evaluation import division_quality
from dividemix.judging.truth import Truth
from dividemix.paper.table import build_rows, to_markdown
from dividemix.report.tables import paper_comparison
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.testing import set_accuracies
from steps import Fixed, division, nets_for


# --------------------------------------------------------------------------------- top-1, top-5
def test_top1_and_top5_of_each_network_and_of_the_ensemble_by_hand():
    """7 classes, 3 samples of labels (0, 1, 6); the rank of the label among the logits:
    net1 1st, 7th, 2nd; net2 2nd, 1st, 7th; the sum [14, 7, ...] 1st, [9, 9, 3, 4, 5, 6, 7] tied 1st
    (argmax takes the first: class 0; top-5 holds both), [9, 2, 4, 6, 8, 10, -1] 7th.
    Each: top-1 1/3, top-5 2/3."""
    net1 = Fixed([[9, 1, 2, 3, 4, 5, 6], [9, 1, 2, 3, 4, 5, 6], [9, 1, 2, 3, 4, 5, 8]])
    net2 = Fixed([[5, 6, 0, 0, 0, 0, 0], [0, 8, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5, -9]])
    ws = small_workspace()
    images = DeviceImages(np.zeros((3, 1, 8, 8), np.uint8), ws.train_images.spec, torch.device("cpu"))
    accs = set_accuracies([net1, net2], ws, images, torch.tensor([0, 1, 6]))
    assert (accs.net1.top1, accs.net1.top5) == pytest.approx((1 / 3, 2 / 3))
    assert (accs.net2.top1, accs.net2.top5) == pytest.approx((1 / 3, 2 / 3))
    assert (accs.ensemble.top1, accs.ensemble.top5) == pytest.approx((1 / 3, 2 / 3))
    ablated = dataclasses.replace(ws, config=parse_config(tiny_params(**{"ablation.ensemble_test": False})))
    assert set_accuracies([net1, net2], ablated, images, torch.tensor([0, 1, 6])).ensemble == accs.net1


def test_epochs_files_of_schema_v2_read_as_v3_with_the_new_columns_null(tmp_path):
    v2 = pa.Table.from_pydict({name: [None] * 2 for name in artifacts.EPOCHS_V2.names}, schema=artifacts.EPOCHS_V2)
    v2 = v2.set_column(0, "epoch", pa.array([0, 1], pa.int32()))
    pq.write_table(v2.replace_schema_metadata({b"dividemix.schema": b"epochs", b"dividemix.schema_version": b"2"}),
                   tmp_path / "epoch_000.parquet")
    frame = artifacts.read_table(tmp_path, "epochs")
    assert list(frame.columns) == artifacts.EPOCHS.names
    assert frame[["test_top5_ensemble", "test2_acc_net1", "test2_top5_net2"]].isna().all().all()


# ----------------------------------------------------------------------------- the eval crop
# (height, width, resize, crop): small wide images whose centre rounds either way, and tall, wide
# and square photographs at both presets' sizes (Clothing1M: 224 from 256; WebVision: 299 from 320).
EVAL_CROPS = [(9, w, 9, 7) for w in (11, 12, 13, 14)] + [
    (h, w, resize, crop) for resize, crop in ((256, 224), (320, 299)) for h, w in ((500, 375), (375, 500), (401, 401))]


@pytest.mark.parametrize("height, width, resize, crop", EVAL_CROPS)
def test_the_evaluation_crop_is_the_references_to_the_pixel(tmp_path, height, width, resize, crop):
    """Resize(resize) then CenterCrop(crop) of the whole image, as torchvision does it: for some
    sizes the centre of the stored square sits one pixel off; the recorded corner puts it right."""
    rng = np.random.default_rng(height * width)
    (tmp_path / "images").mkdir()
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "images/x.png")
    (tmp_path / "train.txt").write_text("x.png 0\n")
    (tmp_path / "test.txt").write_text("x.png 1\n")
    (tmp_path / "images/classes.txt").write_text("a\nb\n")
    data = parse_config(tiny_params(**{"data.dataset": "folder", "data.root": str(tmp_path / "images"),
                                       "data.train_list": str(tmp_path / "train.txt"),
                                       "data.test_list": str(tmp_path / "test.txt"), "data.image_size": crop,
                                       "data.resize": resize, "noise.mode": "none"})).data
    prepare_dataset(data, tmp_path / "prepared")
    spec = spec_from_meta(read_meta(tmp_path / "prepared"))
    images = StreamedImages(images_path(tmp_path / "prepared", "test"), spec, torch.device("cpu"),
                            corners=eval_crop_corners(tmp_path / "prepared", "test"))
    stored = images.rows(torch.tensor([0]))
    top, left = (int(v) for v in eval_crop_corners(tmp_path / "prepared", "test")[0])
    ours = stored[0, :, top : top + crop, left : left + crop].numpy()
    reference = np.asarray(tvf.center_crop(tvf.resize(Image.fromarray(rgb), resize), [crop, crop])).transpose(2, 0, 1)
    np.testing.assert_array_equal(ours, reference)
    normalised = images.plain(torch.tensor([0]))
    expected = (torch.tensor(reference).float()[None] - images._mean) / images._std
    torch.testing.assert_close(normalised, expected)


# ---------------------------------------------------------------------------------- data.flip
def test_data_flip_false_never_flips_and_true_may(tmp_path):
    spec = dataclasses.replace(small_workspace().train_images.spec, hflip=True, crop_padding=0)
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 1, 8, 8)
    flipping = DeviceImages(images, spec, torch.device("cpu"))
    still = DeviceImages(images, dataclasses.replace(spec, hflip=False), torch.device("cpu"))
    index, draws = torch.tensor([0, 1] * 16), torch.Generator().manual_seed(0)
    assert not torch.equal(flipping.augmented(index, draws), flipping.plain(index))
    assert torch.equal(still.augmented(index, torch.Generator().manual_seed(0)), still.plain(index))
    assert parse_config(tiny_params(**{"data.flip": False})).data.flip is False
    with pytest.raises(ConfigError, match="data.flip"):
        parse_config(tiny_params(**{"data.flip": "no"}))


# -------------------------------------------------------------------------- an all-clean epoch
@pytest.mark.parametrize("protocol", ["cifar", "clothing1m", "webvision"])
@pytest.mark.parametrize("crop", ["random_resized", "random", "translate"])
def test_an_epoch_that_judges_every_sample_clean_trains_on_every_crop(crop, protocol):
    """Every sample labeled, none unlabeled (the official code crashes, and so did the WebVision
    crop), under each protocol's step; Clothing1M's division is of its class-balanced sample (here
    every other sample: 100, two steps of 64)."""
    ws = small_workspace(**{"train.protocol": protocol})
    spec = dataclasses.replace(ws.train_images.spec, train_crop=crop, crop_size=6 if crop != "translate" else 0)
    ws = dataclasses.replace(ws, train_images=DeviceImages(ws.train_images.images.numpy(), spec, torch.device("cpu")))
    net, peer, optimizer = nets_for(ws)
    if protocol == "clothing1m":
        clean = dataclasses.replace(division(np.ones(N_SMALL // 2, dtype=bool)), sample_index=np.arange(0, N_SMALL, 2))
    else:
        clean = division(np.ones(N_SMALL, dtype=bool))
    before = [p.detach().clone() for p in net.parameters()]
    rows = dividemix_epoch(net, peer, optimizer, ws, clean, 2, 1)
    steps = 2 if protocol == "clothing1m" else 4
    assert rows["n_unlabeled"] == [0] * steps and rows["n_labeled"] == [len(clean.labeled)] * steps
    assert np.isfinite(rows["loss"]).all() and rows["loss_u"] == [0.0] * steps
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), before))  # it trained


# ------------------------------------------------------------------ division on a verified subset
def test_precision_recall_and_auc_rest_on_the_verified_samples_only(tmp_path):
    """8 divided samples, 5 of known truth. Known: clean = [T, T, F, T, F], labeled = [T, F, T, T, F],
    clean_prob = [.9, .4, .8, .7, .1]. Precision 2/3 (of the 3 labeled known), recall 2/3 (of the 3
    clean), AUC over the 5 known: clean probs (.9, .4, .7) vs noisy (.8, .1): 4 of 6 pairs ordered."""
    known = np.array([0, 1, 2, 4, 6])
    true = np.full(8, -1)
    noisy = np.array([3, 1, 2, 0, 5, 5, 6, 7])
    true[known] = [3, 1, 0, 5, 1]  # clean where equal to noisy: 0, 1, 4 (T, T, F, T, F by position)
    labeled = np.array([1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)  # unknown samples labeled too: never counted
    prob = np.array([0.9, 0.4, 0.8, 0.2, 0.7, 0.95, 0.1, 0.99], dtype=np.float32)
    table = {"epoch": [12] * 8, "net": [1] * 8, "sample_index": np.arange(8), "noisy_label": noisy,
             "loss": np.zeros(8, np.float32), "loss_norm": np.zeros(8, np.float32), "clean_prob": prob,
             "labeled": labeled}
    artifacts.write_table(artifacts.epoch_file(tmp_path / "divisions", 12), "divisions", table)

    class Run:
        def divisions(self, columns=None, filter=None):
            return artifacts.read_table(tmp_path / "divisions", "divisions", columns=columns)

    quality = division_quality(Run(), Truth(true, noisy, "verified")).iloc[0]
    assert quality["n_truth"] == 5
    assert quality["precision"] == pytest.approx(2 / 3) and quality["recall"] == pytest.approx(2 / 3)
    assert quality["auc"] == pytest.approx(4 / 6)


# ------------------------------------------------------------------- the paper's figures beside
def preset_run(name: str) -> dict:
    """Every parameter of a run of preset `name` (like for like with its paper cell), dotted."""
    from dividemix.config import Config, select
    from dividemix.paper.presets import apply_overrides, get_preset

    config = parse_config(apply_overrides(tiny_params(), get_preset(name).overrides | {"data.root": "/data/web"}))
    return select(config, [f"{s}.{k}" for s, f in Config.model_fields.items() for k in f.annotation.model_fields])


WEB = preset_run("webvision")


def web_metrics(**values) -> dict:
    keys = [f"{f}_{w}" for f in ("test_acc", "test_top5", "test2_acc", "test2_top5") for w in ("last10", "last", "best")]
    return dict.fromkeys(keys + ["test_acc_best_val"]) | values


def test_the_report_sets_each_webvision_number_beside_the_papers():
    metrics = web_metrics(test_acc_last10=0.5, test_acc_last=0.52, test_acc_best=0.6, test2_top5_last10=0.875)
    comparison = paper_comparison(WEB, metrics)
    rows = {label: (run, paper) for label, run, paper in comparison.rows}
    assert list(rows) == ["WebVision val top-1", "WebVision val top-5", "ILSVRC12 val top-1 (same 50 classes)",
                          "ILSVRC12 val top-5 (same 50 classes)"]
    assert rows["WebVision val top-1"] == ("50.00% (last 10) · 52.00% (last) · 60.00% (best epoch, an oracle)", "77.32%")
    assert rows["ILSVRC12 val top-5 (same 50 classes)"][0].startswith("87.50% (last 10)")
    assert rows["ILSVRC12 val top-5 (same 50 classes)"][1] == "90.84%"


def test_clothing1m_is_compared_on_the_best_validation_weights_or_said_not_like_for_like():
    cell = preset_run("clothing1m")
    run, paper = paper_comparison(cell, web_metrics(test_acc_best_val=0.7, test_acc_best=0.9)).rows[0][1:]
    assert (run, paper) == ("70.00% (best-validation weights)", "74.76%")
    without_val = paper_comparison(cell, web_metrics(test_acc_last10=0.6, test_acc_best=0.9)).rows[0][1]
    assert without_val.startswith("no validation set: not like for like")


def test_the_table_lists_the_web_figures_with_mean_and_std_over_seeds():
    runs = [(f"wv-s{seed}", WEB | {"train.seed": seed}, web_metrics(test_acc_last10=a, test_top5_last10=b,
                                                                       test2_acc_last10=c, test2_top5_last10=d))
            for seed, (a, b, c, d) in enumerate([(0.70, 0.90, 0.60, 0.80), (0.72, 0.92, 0.62, 0.84)])]
    clothing = preset_run("clothing1m")
    runs.append(("c1m", clothing, web_metrics(test_acc_best_val=0.74, test_acc_best=0.8, test_acc_last10=0.73)))
    markdown = to_markdown(build_rows(runs))
    lines = markdown.splitlines()
    def row(setting: str, figure: str) -> str:
        return next(line for line in lines if line.startswith(f"| {setting} ") and f"| {figure} |" in line)

    assert row("webvision", "WebVision val top-1").endswith("| 71.00 ± 1.41 | 77.32 | like for like |")
    assert row("webvision", "ILSVRC12 val top-5 (same 50 classes)").endswith("| 82.00 ± 2.83 | 90.84 | like for like |")
    assert row("clothing1m", "Clothing1M test top-1 (best-validation weights, ensembled)").endswith(
        "| 74.00 | 74.76 | like for like |")
    main = next(line for line in lines if line.startswith("| clothing1m ") and " | 1 | " in line)
    assert "74.76" not in main  # never beside the best epoch (an oracle): only in the figures' table


# ------------------------------------------------------------------------ a folder's class count
def test_a_folder_class_count_is_never_guessed_silently(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.fromarray(np.full((9, 9, 3), 40 * i, np.uint8)).save(tmp_path / f"images/{i}.png")
    (tmp_path / "train.txt").write_text("0.png 0\n1.png 2\n2.png 1\n")
    (tmp_path / "test.txt").write_text("3.png 2\n")
    keys = {"data.dataset": "folder", "data.root": str(tmp_path / "images"), "noise.mode": "none",
            "data.train_list": str(tmp_path / "train.txt"), "data.test_list": str(tmp_path / "test.txt"),
            "data.image_size": 8}
    meta = prepare_dataset(parse_config(tiny_params(**keys)).data, tmp_path / "guessed")
    assert meta["num_classes"] == 3 and "note: 3 classes guessed from the largest label (2)" in capsys.readouterr().out
    meta = prepare_dataset(parse_config(tiny_params(**keys | {"data.num_classes": 5})).data, tmp_path / "given")
    assert meta["num_classes"] == 5 and "guessed" not in capsys.readouterr().out
