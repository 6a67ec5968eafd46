"""Every reported figure as the reference measures it: in fp32 whatever train.amp, top-5 by
torchnet's rule, each network's figures from its own logits, the Clothing1M figure from the
best-validation weights of the last epoch. The training loops run in this process on an in-memory
workspace (digits, with a validation and a second test set), so each check takes seconds."""

from __future__ import annotations

import copy
import dataclasses
import weakref

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from conftest import N_SMALL, small_workspace, tiny_params
from dividemix.config import parse_config
from dividemix.files.layout import Paths
from dividemix.images.batches import DeviceImages
from dividemix.training import testing
from dividemix.training.baseline import run_baseline
from dividemix.training.train import run_train
from dividemix.training.warmup import run_warmup
from dividemix.training.workspace import Workspace
from steps import Fixed

SETS = ("train", "test", "val", "test2")


def workspace_with_every_set(**overrides) -> Workspace:
    """The small digits workspace plus a clean validation set and a second test set (digits after
    the test set's 50), at the tiny parameters with `overrides`."""
    ws = small_workspace(**overrides)
    bunch = load_digits()
    extra = bunch.images.astype(np.uint8)[:, None]
    start = N_SMALL + len(ws.test_labels)
    cpu = torch.device("cpu")

    def part(lo: int, hi: int):
        return (DeviceImages(extra[lo:hi], ws.test_images.spec, cpu),
                torch.as_tensor(bunch.target[lo:hi], dtype=torch.int64))

    val_images, val_labels = part(start, start + 40)
    test2_images, test2_labels = part(start + 40, start + 70)
    return dataclasses.replace(ws, val_images=val_images, val_labels=val_labels, test2_images=test2_images,
                               test2_labels=test2_labels)


def run_all_stages(ws: Workspace, root, monkeypatch) -> Paths:
    """warm-up, train and the baseline on `ws` (Workspace.load returns it), outputs under `root`."""
    monkeypatch.setattr(Workspace, "load", classmethod(lambda cls, config, prepared, noisy: ws))
    paths = Paths.layout(root)
    for run in (run_warmup, run_train, run_baseline):
        run(ws.config, paths, {})
    return paths


# ------------------------------------------------------------------------------------ fp32 only
class EvalBatches:
    """Each set's `plain` (the evaluation transform) wrapped, so the batches it makes are known."""

    def __init__(self, ws: Workspace):
        self.made: dict[int, tuple[weakref.ref, str]] = {}
        for name in SETS:
            images = getattr(ws, f"{name}_images")
            images.plain = self.wrap(images.plain, name)

    def wrap(self, real, name: str):
        def plain(index):
            batch = real(index)
            self.made[id(batch)] = (weakref.ref(batch), name)
            return batch

        return plain

    def set_of(self, tensor: torch.Tensor) -> str | None:
        """The set whose evaluation batch `tensor` is (None: a training batch, or a layer's input)."""
        ref, name = self.made.get(id(tensor), (None, None))
        return name if ref is not None and ref() is tensor else None  # (an id outlives its tensor)


def test_every_reported_figure_is_computed_in_fp32_under_bf16_training(tmp_path, monkeypatch):
    """train.amp on: every forward pass of a network over an evaluation batch (the division's
    losses, test, second test, validation, the best-validation ensemble's test, the baseline's
    test) runs with autocast off; the training steps do run under bf16."""
    ws = workspace_with_every_set(**{"train.amp": True, "train.epochs": 3, "train.warmup_epochs": 1, "train.lr_drop_epoch": 2})
    batches, seen = EvalBatches(ws), []

    def pre_hook(module, args):  # every module's forward: its input batch's set, and autocast's state
        if args and isinstance(args[0], torch.Tensor):
            seen.append((batches.set_of(args[0]), torch.is_autocast_enabled(ws.device.type)))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(pre_hook)
    try:
        run_all_stages(ws, tmp_path, monkeypatch)
    finally:
        handle.remove()
    evaluated = {name for name, _ in seen if name is not None}
    assert evaluated == set(SETS), evaluated  # every set's passes were seen (the spy works)
    under_bf16 = sorted({name for name, autocast in seen if name is not None and autocast})
    assert under_bf16 == [], f"evaluation passes under autocast: {under_bf16}"
    assert any(autocast for name, autocast in seen if name is None)  # the training steps ran in bf16


def test_the_eval_pass_gives_fp32_logits_whatever_train_amp(small_ws):
    ws = dataclasses.replace(small_ws, config=parse_config(tiny_params(**{"train.amp": True})))
    net = ws.new_net(1)
    amp_on = ws.logits(net, ws.test_images)
    off = small_ws.logits(net, ws.test_images)
    assert amp_on.dtype == torch.float32 and torch.equal(amp_on, off)  # bit for bit the fp32 pass


# ---------------------------------------------------------------------------------------- top-5
@pytest.mark.parametrize("classes, expected", [(5, 1.0), (6, 0.5), (4, None)])
def test_top5_follows_torchnets_rule(small_ws, classes, expected):
    """torchnet's ClassErrorMeter(topk=[1, 5]) takes output.topk(5): with exactly 5 classes every
    sample is in its top 5 (100%); with fewer, topk raises, and the figure is undefined here."""
    # label 0: ranked first for the first sample, last for the second (5th of 5, 6th of 6)
    logits = [[9.0] + [0.0] * (classes - 1), [-1.0] + [float(c) for c in range(classes - 1, 0, -1)]]
    images = DeviceImages(np.zeros((2, 1, 8, 8), np.uint8), small_ws.train_images.spec, torch.device("cpu"))
    accs = testing.set_accuracies([Fixed(logits)] * 2, small_ws, images, torch.tensor([0, 0]))
    assert accs.ensemble.top1 == 0.5 and accs.net1.top5 == expected and accs.ensemble.top5 == expected


def test_each_networks_top5_is_its_own():
    """Label 0 of 6 classes: net1 ranks it 2nd (top-5 yes), net2 6th (no), their sum 6th (no)."""
    net1, net2 = Fixed([[5.0, 9, 0, 0, 0, 0]]), Fixed([[-100.0, 1, 2, 3, 4, 5]])
    ws = small_workspace()
    images = DeviceImages(np.zeros((1, 1, 8, 8), np.uint8), ws.train_images.spec, torch.device("cpu"))
    accs = testing.set_accuracies([net1, net2], ws, images, torch.tensor([0]))
    assert (accs.net1.top1, accs.net1.top5) == (0.0, 1.0)
    assert (accs.net2.top5, accs.ensemble.top5) == (0.0, 0.0)


# ------------------------------------------------------------------------ best-validation weights
def with_head(net: torch.nn.Module, scale: float) -> torch.nn.Module:
    """A copy of `net` whose linear head is multiplied by `scale` (0: every logit 0, class 0 wins;
    negative: the ranking reversed)."""
    out = copy.deepcopy(net)
    head = [m for m in out.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    return out


def test_the_best_validation_figure_tests_each_networks_best_weights_not_the_current_ones(small_ws):
    """Validation and test labels are what network A predicts. Epoch 1: net1 = A's head zeroed
    (worse), net2 = A (100%). Epoch 2: net1 = A (better: kept), net2 = A reversed (0%: net2's
    epoch-1 weights stay). The figure is the test of (A, A), 100%; the current pair (A, -2A)
    would rank every sample's class last (0%)."""
    a = small_ws.new_net(1)
    ws = dataclasses.replace(small_ws, val_images=small_ws.test_images,
                             val_labels=small_ws.logits(a, small_ws.test_images).argmax(1))
    ws = dataclasses.replace(ws, test_labels=ws.val_labels)
    assert (ws.val_labels != 0).any()  # (the zeroed head, predicting class 0 everywhere, is worse)
    best = testing.BestValidation(ws)
    first = best.update({1: with_head(a, 0.0), 2: a})
    assert first.net2 == 1.0 and first.net1 < 1.0
    second = best.update({1: a, 2: with_head(a, -2.0)})
    assert (second.net1, second.net2) == (1.0, 0.0)
    assert second.best_test == 1.0


# ------------------------------------------------------------------------------- last 10 epochs
@pytest.fixture(scope="module")
def ten_epoch_run(tmp_path_factory):
    """One warm-up and 10 DivideMix epochs (and the baseline) on the workspace with every set."""
    ws = workspace_with_every_set(**{"train.epochs": 11, "train.warmup_epochs": 1, "train.lr_drop_epoch": 8})
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_all_stages(ws, tmp_path_factory.mktemp("ten_epochs"), monkeypatch)


def test_last10_of_every_figure_is_the_mean_of_the_last_10_dividemix_epochs_of_a_real_run(ten_epoch_run):
    from dividemix.judging import evaluation

    run = evaluation.RunArtifacts(ten_epoch_run.artifacts)
    metrics = evaluation.summary_metrics(evaluation.accuracy_curves(run), evaluation.division_quality(run, None), None)
    epochs = run.epochs()
    trained = epochs[epochs["phase"] == "dividemix"]
    assert list(trained["epoch"]) == list(range(1, 11)) and metrics["test_acc_last10_from_epoch"] == 1
    for figure, column in (("test_acc", "test_acc_ensemble"), ("test_top5", "test_top5_ensemble"),
                           ("test2_acc", "test2_acc_ensemble"), ("test2_top5", "test2_top5_ensemble")):
        assert metrics[f"{figure}_last10"] == pytest.approx(trained[column].mean(), abs=1e-12), figure
        assert metrics[f"{figure}_last"] == pytest.approx(trained[column].iloc[-1], abs=1e-12), figure
        assert metrics[f"{figure}_best"] == pytest.approx(epochs[column].max(), abs=1e-12), figure
    assert metrics["test_acc_best_val"] == pytest.approx(epochs["test_acc_best_val"].iloc[-1], abs=1e-12)
    assert metrics["test2_top5_last10"] != metrics["test2_acc_last10"]  # (two figures, not one twice)


def test_the_best_validation_figure_is_the_last_epochs_not_the_best_over_epochs():
    """The Clothing1M protocol's figure is the last epoch's test of the best-validation weights;
    the best over epochs would choose an epoch on the test set (an oracle)."""
    from dividemix.judging.evaluation import summary_metrics

    curves = pd.DataFrame({"epoch": [0, 1, 2], "phase": ["warmup", "dividemix", "dividemix"],
                           "dividemix": [0.5, 0.6, 0.55], "net1": [0.5] * 3, "net2": [0.5] * 3,
                           "best_val": [0.5, 0.8, 0.6], "baseline": [0.4] * 3})
    quality = pd.DataFrame({"epoch": [2], "net": [1], "auc": [np.nan], "precision": [np.nan],
                            "recall": [np.nan], "n_truth": [0], "n_labeled": [3]})
    assert summary_metrics(curves, quality, None)["test_acc_best_val"] == 0.6


# ------------------------------------------------------------------------------------ data.flip
@pytest.fixture(scope="module")
def prepared_digits(tmp_path_factory):
    """Digits prepared and labelled (no noise) as the download and noise stages make them."""
    from dividemix.datasets.registry import SPECS
    from dividemix.noise.inject import noisy_label_file

    paths = Paths.layout(tmp_path_factory.mktemp("flip"))
    SPECS["digits"].prepare(paths.prepared)
    noisy_label_file(dataset="digits", prepared=paths.prepared, out=paths.noisy, mode="none", rate=0.0, seed=0)
    return paths


@pytest.mark.parametrize("flips_by_default", [False, True])
@pytest.mark.parametrize("flip", [None, False, True])
def test_data_flip_decides_whether_training_batches_are_flipped(prepared_digits, tmp_path, monkeypatch,
                                                                  flips_by_default, flip):
    """From params.yaml to the training batches: data.flip null keeps the data set's choice (its
    meta.json: digits off; a data set that flips by default, as CIFAR and the web sets do, on),
    false never flips, true always may."""
    import json
    import shutil

    import dividemix.images.batches as batches

    prepared = tmp_path / "prepared"
    shutil.copytree(prepared_digits.prepared, prepared)
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["hflip"] is False  # digits' own choice
    (prepared / "meta.json").write_text(json.dumps(meta | {"hflip": flips_by_default}))
    flips = []
    real = batches.random_hflip
    monkeypatch.setattr(batches, "random_hflip", lambda batch, generator: flips.append(1) or real(batch, generator))
    config = parse_config(tiny_params(**{"data.flip": flip, "noise.mode": "none"}))
    ws = Workspace.load(config, prepared, prepared_digits.noisy)
    ws.train_pair(torch.arange(16), torch.Generator().manual_seed(0))
    expected = flips_by_default if flip is None else flip
    assert bool(flips) == expected and ws.train_images.spec.hflip == expected
