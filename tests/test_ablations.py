"""The paper's Table 5 ablations (`ablation.*`): each switch by hand on a step or an epoch, and one
tiny end-to-end run with all of them off.

All true is DivideMix; each false removes one component:
co_divide (each network trains on its own division), label_refinement (labeled targets are the
noisy one-hot labels), co_guessing (the trained network guesses alone), augmentation (training
batches use the test transform, warm-up included), ensemble_test (the reported test accuracy is
net1's alone).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dividemix.method.mixmatch as mixmatch
import dividemix.training.train as train_loop
from conftest import N_SMALL, digits_run, run_paths, small_workspace, stage_params, tiny_params
from dividemix.config import parse_config, select
from dividemix.datasets.registry import SPECS
from dividemix.files import artifacts
from dividemix.images.batches import DeviceImages
from dividemix.method.mixmatch import co_guess, co_refine, ramp_weight
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import make_optimizer
from dividemix.training.testing import ensemble_accuracy
from dividemix.training.warmup import run_warmup, warmup_epoch
from dividemix.training.workspace import NETS
from steps import Lookup, division, make_batch, np_sharpen, np_softmax, step, t, tiny_net, top1s

ALL_OFF = {
    "ablation.co_divide": False,
    "ablation.label_refinement": False,
    "ablation.co_guessing": False,
    "ablation.augmentation": False,
    "ablation.ensemble_test": False,
}


def capture_mix(monkeypatch) -> list:
    """Record the (inputs, targets) MixMatch receives."""
    seen = []
    real = mixmatch.mix

    def spy(inputs, targets, lam, generator, **kwargs):
        seen.append((inputs.clone(), targets.clone()))
        return real(inputs, targets, lam, generator, **kwargs)

    monkeypatch.setattr(mixmatch, "mix", spy)
    return seen


def run_step(net, peer, batch, **options):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return step(net, peer, optimizer, batch, lambda_u=25.0, **options)


class Refuses(nn.Module):
    """A network that must not be called."""

    def forward(self, x):
        raise AssertionError("this network must not be called")


# ---------------------------------------------------------------------------- label refinement
def test_without_label_refinement_the_labeled_targets_are_the_noisy_one_hot_labels(monkeypatch):
    seen = capture_mix(monkeypatch)
    batch = make_batch(6, 5)
    run_step(tiny_net(0), tiny_net(1), batch, label_refinement=False)
    targets = seen[0][1]
    onehot = F.one_hot(batch.y, 3).float()
    assert torch.equal(targets[:6], onehot) and torch.equal(targets[6:12], onehot)
    # ... which is co-refinement with w forced to 1 (sharpen(onehot) = onehot), whatever the network says:
    torch.testing.assert_close(co_refine(Lookup({0: [3.0, -1.0, 0.5]}), torch.zeros(1, 1), torch.zeros(1, 1),
                                         t([[0.0, 1.0, 0.0]]), t([[1.0]]), 0.5), t([[0.0, 1.0, 0.0]]))


def test_with_label_refinement_the_labeled_targets_are_not_the_one_hot_labels(monkeypatch):
    """The control of the test above: the switch is what makes the difference."""
    seen = capture_mix(monkeypatch)
    batch = make_batch(6, 5)
    run_step(tiny_net(0), tiny_net(1), batch)
    assert not torch.equal(seen[0][1][:6], F.one_hot(batch.y, 3).float())


# ---------------------------------------------------------------------------------- co-guessing
def test_co_guess_without_a_peer_is_the_net_s_own_sharpened_mean():
    net = Lookup({0: [1.0, 0.0, 0.0], 1: [0.0, 1.0, 0.0]})
    out = co_guess(net, None, torch.zeros(2, 1), torch.ones(2, 1), 0.5)
    expected = np_sharpen((np_softmax([1, 0, 0]) + np_softmax([0, 1, 0])) / 2, 0.5)
    torch.testing.assert_close(out, t([expected, expected]))
    assert net.calls == 2


def test_without_co_guessing_the_step_never_calls_the_peer_and_guesses_alone(monkeypatch):
    with pytest.raises(AssertionError, match="must not be called"):  # the control: co-guessing calls the peer
        run_step(tiny_net(0), Refuses(), make_batch(6, 5))
    seen = capture_mix(monkeypatch)
    batch, net = make_batch(6, 5), tiny_net(0)
    alone = copy.deepcopy(net)  # in train mode, as the step's guessing passes
    run_step(net, Refuses(), batch, co_guessing=False)
    with torch.no_grad():  # the unlabeled targets: the trained net's own two softmaxes, averaged, sharpened
        p = (F.softmax(alone(batch.u1), 1) + F.softmax(alone(batch.u2), 1)) / 2
    expected = p**2 / (p**2).sum(1, keepdim=True)  # T = 0.5
    torch.testing.assert_close(seen[0][1][12:17], expected)  # [x1, x2, u1, u2]: rows 2B.. are u1's


# ---------------------------------------------------------------------------------- augmentation
def test_without_augmentation_training_batches_are_the_test_transform(monkeypatch):
    ws = small_workspace(**{"ablation.augmentation": False})
    index = torch.tensor([3, 1, 4, 1, 5])
    assert torch.equal(ws.train_batch(index, torch.Generator().manual_seed(0)), ws.train_images.plain(index))
    with_aug = small_workspace()
    augmented = with_aug.train_batch(index, torch.Generator().manual_seed(0))
    assert not torch.equal(augmented, with_aug.train_images.plain(index))

    def refuse(*args, **kwargs):
        raise AssertionError("augmented batch drawn")

    monkeypatch.setattr(DeviceImages, "augmented", refuse)
    net = ws.new_net(1)
    rows = warmup_epoch(net, make_optimizer(net, ws.config.train), ws, 0, 1, conf_penalty=False)  # warm-up included
    assert len(rows["step"]) == 2  # ceil(200 / 128)
    net2 = ws.new_net(2)
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[:130] = True
    rows = dividemix_epoch(net, net2, make_optimizer(net, ws.config.train), ws, division(labeled), 2, 1)
    assert rows["step"] == [0, 1, 2]


# --------------------------------------------------------------------------------- ensemble test
class Fixed(nn.Module):
    """Logits given per test sample, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = t(logits)

    def forward(self, x):
        return self.logits[: len(x)]


def test_without_ensemble_test_the_reported_accuracy_is_net1_alone():
    # 2 test samples of class 0: net1 right on the first only, net2 on the second only; the sum
    # ([2, 1] and [3, 1]) is right on both.
    net1 = Fixed([[2.0, 0.0], [0.0, 1.0]])
    net2 = Fixed([[0.0, 1.0], [3.0, 0.0]])
    for ablation, expected in ((True, [0.5, 0.5, 1.0]), (False, [0.5, 0.5, 0.5])):
        ws = small_workspace(**{"ablation.ensemble_test": ablation})
        ws.test_images = DeviceImages(np.zeros((2, 1, 8, 8), np.uint8), SPECS["digits"], torch.device("cpu"))
        ws.test_labels = torch.tensor([0, 0])
        assert top1s(ensemble_accuracy([net1, net2], ws)) == pytest.approx(expected)


# ------------------------------------------------------------------------------------ co-divide
def test_without_co_divide_each_network_trains_on_its_own_division(tiny_run, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    (root / "checkpoints/train/last.pt").unlink()
    made, trained = {}, []
    real_divide, real_epoch = train_loop.divide_for, train_loop.dividemix_epoch

    def recording_divide(net, *args, **kwargs):
        division = real_divide(net, *args, **kwargs)
        made[id(division)] = id(net)
        return division

    def recording_epoch(net, peer, optimizer, ws, division, epoch, net_id):
        trained.append((id(net), made[id(division)]))
        return real_epoch(net, peer, optimizer, ws, division, epoch, net_id)

    monkeypatch.setattr(train_loop, "divide_for", recording_divide)
    monkeypatch.setattr(train_loop, "dividemix_epoch", recording_epoch)
    # (the default, each network on its peer's division, is test_codivide's wiring test)
    config = parse_config(tiny_params(**{"train.epochs": 3, "ablation.co_divide": False}))
    train_loop.run_train(config, run_paths(root), select(config, stage_params("train")))
    assert len(trained) == 2 and trained[0][0] != trained[1][0]
    assert all(net == divider for net, divider in trained), trained


# ---------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def ablated_run(tmp_path_factory, digits_data):
    root = digits_run(digits_data, tmp_path_factory.mktemp("ablated"))
    config = parse_config(tiny_params(**{"train.epochs": 3, **ALL_OFF}))
    paths = run_paths(root)
    run_warmup(config, paths, select(config, stage_params("warmup")))
    train_loop.run_train(config, paths, select(config, stage_params("train")))
    return root


def test_a_run_with_every_ablation_off_completes_with_its_artifacts(ablated_run):
    epochs = pd.concat([
        artifacts.read_table(ablated_run / "artifacts/warmup/epochs.parquet", "epochs"),
        artifacts.read_table(ablated_run / "artifacts/epochs", "epochs"),
    ])
    assert list(epochs["epoch"]) == [0, 1, 2]
    # ensemble_test false: the reported accuracy is net1's
    assert (epochs["test_acc_ensemble"] == epochs["test_acc_net1"]).all()
    losses = artifacts.read_table(ablated_run / "artifacts/losses", "losses")
    # the recorded total is Lx + lambda_u * Lu + penalty, lambda_u as ramped at each step's progress
    np.testing.assert_allclose(losses["loss"], losses["loss_x"] + losses["lambda_u"] * losses["loss_u"]
                               + losses["penalty"], rtol=1e-5, atol=1e-6)
    for net in NETS:
        rows = losses[losses["net"] == net]
        num_iter = rows["n_labeled"].iloc[0] // 64 + 1
        ramp = [ramp_weight(25.0, 2 + step / num_iter, 2, 16) for step in rows["step"]]
        np.testing.assert_allclose(rows["lambda_u"], ramp)
    # co_divide false: each network's labeled set is the one its own losses made
    last = epochs.iloc[-1]
    assert last["labeled_by_net1"] != last["labeled_by_net2"]  # else the check below could not tell
    for net in NETS:
        assert set(losses.loc[losses["net"] == net, "n_labeled"]) == {last[f"labeled_by_net{net}"]}
    divisions = artifacts.read_table(ablated_run / "artifacts/divisions", "divisions")
    assert len(divisions) == 2 * 1437
