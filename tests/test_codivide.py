"""Co-divide: per-sample loss, normalisation, loss history, the mixture, the split, and its wiring.

Expected values are computed by hand or by an independent formula in the test.
"""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

import dividemix.method.codivide as codivide
import dividemix.method.inference as inference
import dividemix.training.train as train_loop
from conftest import digits_run, run_paths, stage_params, tiny_params
from dividemix.config import ConfigError, parse_config, select
from dividemix.datasets.prepared import load_test_set
from dividemix.datasets.registry import SPECS
from dividemix.images.batches import DeviceImages
from dividemix.method.codivide import LossHistory, divide, fit_mixture, min_max_normalise, per_sample_loss
from dividemix.method.inference import eval_logits
from dividemix.method.models import cnn_small
from dividemix.training.rows import division_rows, epoch_row
from dividemix.training.sampling import balanced_sample
from dividemix.training.testing import Accuracies, Accuracy, EpochTests
from dividemix.training.warmup import run_warmup
from steps import state_copy


# ----------------------------------------------------------------------------- normalisation
def test_min_max_normalise_by_hand():
    out = min_max_normalise(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 1.0]))
    out = min_max_normalise(torch.tensor([5.0, -1.0, 2.0]))
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0, 0.5]))


def test_min_max_normalise_of_constant_losses_is_zeros_not_nan():
    out = min_max_normalise(torch.full((4,), 2.5))
    assert torch.equal(out, torch.zeros(4))


# ------------------------------------------------------------------------------- loss history
def test_loss_history_averages_a_slice_of_the_last_window_epochs():
    history = LossHistory(window=5)
    expected = {1: 1.0, 2: 1.5, 3: 2.0, 4: 2.5, 5: 3.0, 6: 4.0, 7: 5.0}  # mean(max(1, k-4)..k)
    for k in range(1, 8):
        out = history.push(torch.full((3,), float(k)))
        assert out.shape == (3,)
        # After 7 pushes: mean(3..7) = 5, not the 5th-last epoch (3).
        torch.testing.assert_close(out, torch.full((3,), expected[k]))
    assert [float(t[0]) for t in history.state()] == [3.0, 4.0, 5.0, 6.0, 7.0]  # memory bounded by the window


def test_loss_history_averages_per_sample_not_over_samples():
    history = LossHistory(window=2)
    history.push(torch.tensor([0.0, 1.0]))
    out = history.push(torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(out, torch.tensor([0.5, 1.0]))


def test_loss_history_window_one_returns_the_current_vector():
    history = LossHistory(window=1)
    history.push(torch.tensor([9.0, 9.0]))
    current = torch.tensor([0.25, 0.75])
    torch.testing.assert_close(history.push(current), current)


def test_loss_history_resumed_from_state_continues_the_window():
    full = LossHistory(window=3)
    for k in range(1, 5):
        full.push(torch.full((2,), float(k)))
    resumed = LossHistory(window=3, past=full.state())
    torch.testing.assert_close(resumed.push(torch.full((2,), 5.0)), torch.full((2,), 4.0))  # mean(3, 4, 5)


# -------------------------------------------------------------------------------- the mixture
def bimodal(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.1, 0.03, 300), rng.normal(0.8, 0.05, 100)])


def gaussian_posterior(x, means, variances, weights, k):
    """The posterior of component k, from the fitted parameters (an independent formula)."""
    dens = [w / math.sqrt(2 * math.pi * v) * np.exp(-((x - m) ** 2) / (2 * v)) for m, v, w in zip(means, variances, weights)]
    return dens[k] / (dens[0] + dens[1])


def test_fit_mixture_gives_the_low_loss_mode_high_clean_probability():
    x = bimodal()
    orders = set()
    for seed in range(8):
        prob, fit = fit_mixture(x, seed=seed)
        assert prob.shape == (400,)
        assert fit.means[fit.clean] == min(fit.means)
        assert fit.means[fit.clean] == pytest.approx(0.1, abs=0.02)
        assert fit.means[1 - fit.clean] == pytest.approx(0.8, abs=0.02)
        assert fit.weights[fit.clean] == pytest.approx(0.75, abs=0.02)
        assert prob[:300].min() > 0.99
        assert prob[300:].max() < 0.01
        np.testing.assert_allclose(
            prob, gaussian_posterior(x, fit.means, fit.variances, fit.weights, fit.clean), atol=1e-6
        )
        orders.add(fit.clean)
    # The fitted component order varies with the seed: "clean" really is chosen by the mean, not fixed.
    assert orders == {0, 1}


def test_fit_mixture_same_seed_same_output():
    x = bimodal(1) + np.random.default_rng(2).normal(0, 0.2, 400)  # overlapping modes: the fit depends on its init
    p1, f1 = fit_mixture(x, seed=5)
    p2, f2 = fit_mixture(x, seed=5)
    np.testing.assert_array_equal(p1, p2)
    assert f1 == f2


def test_divide_is_strict():
    prob = np.array([0.5, 0.5000001, 0.4999999, 1.0, 0.0])
    np.testing.assert_array_equal(divide(prob, 0.5), [False, True, False, True, False])
    np.testing.assert_array_equal(divide(np.array([0.6, 0.61]), 0.6), [False, True])


# --------------------------------------------------------------------------- per-sample loss
@pytest.fixture
def few_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images[:10].astype(np.uint8)[:, None]
    labels = torch.as_tensor(bunch.target[:10], dtype=torch.int64)
    labels[::3] = (labels[::3] + 1) % 10  # some noisy labels
    return images, labels


def test_per_sample_loss_is_plain_eval_mode_cross_entropy(few_digits, monkeypatch):
    images, labels = few_digits
    monkeypatch.setattr(inference, "EVAL_BATCH", 4)  # several batches: order and concatenation matter
    torch.manual_seed(0)
    net = cnn_small(10, 1)
    net.train()
    with torch.no_grad():  # move BatchNorm running stats away from their defaults
        for _ in range(3):
            net(torch.randn(16, 1, 8, 8) * 2 + 1)
    buffers = {k: v.clone() for k, v in net.state_dict().items()}

    loss = per_sample_loss(net, DeviceImages(images, SPECS["digits"], torch.device("cpu")), labels)

    # Independent: test transform is (pixel / 16 - mean) / std, the network in eval mode, no augmentation.
    x = (torch.as_tensor(images, dtype=torch.float32) / 16.0 - 0.3053) / 0.3760
    reference = copy.deepcopy(net).eval()
    with torch.no_grad():
        expected = F.cross_entropy(reference(x), labels, reduction="none")
    assert loss.shape == (10,) and loss.dtype == torch.float32 and loss.device.type == "cpu"
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    # BatchNorm running statistics (and every other buffer) untouched.
    for key, value in net.state_dict().items():
        assert torch.equal(value, buffers[key]), key


# ------------------------------------------------------------------------- co-divide wiring
def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_epoch_wiring_peer_of_net2_is_the_updated_net1(tiny_run, tmp_path, monkeypatch):
    """Per epoch: both divisions first; net1 trains on net2's division with net2 as peer; then net2 on
    net1's division with the *already-updated* net1 as peer (reference `Train_cifar.py`)."""
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    (root / "checkpoints/train/last.pt").unlink()  # start over from the warm-up checkpoint

    events: list[tuple] = []
    real_divide, real_epoch = train_loop.divide_for, train_loop.dividemix_epoch

    def recording_divide(net, *args, **kwargs):
        before = state_copy(net)
        division = real_divide(net, *args, **kwargs)
        events.append(("divide", id(net), before, division))
        return division

    def recording_epoch(net, peer, optimizer, ws, division, epoch, net_id):
        net_before, peer_at_call = state_copy(net), state_copy(peer)
        rows = real_epoch(net, peer, optimizer, ws, division, epoch, net_id)
        events.append(("train", net_id, epoch, id(net), id(peer), division, net_before, peer_at_call, state_copy(net)))
        return rows

    monkeypatch.setattr(train_loop, "divide_for", recording_divide)
    monkeypatch.setattr(train_loop, "dividemix_epoch", recording_epoch)

    raw = tiny_params(**{"train.epochs": 3})  # TINY_PARAMS with one DivideMix epoch (epoch 2): enough, and fast
    config = parse_config(raw)
    params = select(config, [f"{s}.{k}" for s, sec in raw.items() for k in sec])
    paths = run_paths(root)
    train_loop.run_train(config, paths, params)

    epochs = range(raw["train"]["warmup_epochs"], raw["train"]["epochs"])
    assert list(epochs) == [2]
    assert [e[0] for e in events] == ["divide", "divide", "train", "train"] * len(epochs)
    for i, epoch in enumerate(epochs):
        d1, d2, t1, t2 = events[4 * i : 4 * i + 4]
        net1_id, net2_id = d1[1], d2[1]
        assert net1_id != net2_id
        _, n1, e1, a1, _, div1, net1_before, peer1_at_call, net1_after = t1
        _, n2, e2, a2, _, div2, net2_before, peer2_at_call, _ = t2
        assert (n1, n2, e1, e2) == (1, 2, epoch, epoch)
        assert (a1, a2) == (net1_id, net2_id)  # the networks that divided are the ones trained
        # Co-divide: each network trains on the division its peer's losses made.
        assert div1 is d2[3] and div2 is d1[3]
        # Both divisions come from the networks before either trains this epoch.
        assert same_state(d1[2], net1_before) and same_state(d2[2], net2_before)
        # net1 really changed, and net2's peer is net1 *after* its epoch, not before.
        assert not same_state(net1_before, net1_after)
        assert same_state(peer2_at_call, net1_after)
        assert not same_state(peer2_at_call, net1_before)
        # net1's peer is net2 before its epoch (net2 trains second).
        assert same_state(peer1_at_call, net2_before)


# ----------------------------------------------------------------- the Clothing1M protocol
def reference_balanced_sample(labels, num_samples, num_classes, order):
    """The reference loader's loop ('all' mode), over a given shuffled order."""
    counts = np.zeros(num_classes)
    taken = []
    for i in order:
        if counts[labels[i]] < num_samples / num_classes and len(taken) < num_samples:
            taken.append(i)
            counts[labels[i]] += 1
    return np.sort(np.array(taken, dtype=np.int64))


@pytest.mark.parametrize("num_samples", [10, 64, 333, 5000])
def test_balanced_sample_is_the_reference_loop(num_samples):
    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=1000, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])  # imbalanced classes
    out = balanced_sample(labels, num_samples, 7, np.random.default_rng(3))
    order = np.random.default_rng(3).permutation(1000)  # the same draw
    np.testing.assert_array_equal(out, reference_balanced_sample(labels, num_samples, 7, order))
    counts = np.bincount(labels[out], minlength=7)
    assert len(out) <= num_samples and counts.max() <= math.ceil(num_samples / 7)
    assert len(set(out.tolist())) == len(out)


def test_per_sample_loss_of_a_subset_is_the_full_loss_at_those_samples(few_digits):
    images, labels = few_digits
    torch.manual_seed(0)
    net = cnn_small(10, 1)
    device_images = DeviceImages(images, SPECS["digits"], torch.device("cpu"))
    full = per_sample_loss(net, device_images, labels)
    index = torch.tensor([7, 2, 5])
    torch.testing.assert_close(per_sample_loss(net, device_images, labels, index=index, batch_size=2), full[index])


def test_co_divide_of_a_subset_records_its_sample_index(few_digits):
    images, labels = few_digits
    torch.manual_seed(0)
    net = cnn_small(10, 1)
    device_images = DeviceImages(images, SPECS["digits"], torch.device("cpu"))
    subset = np.array([0, 3, 4, 8, 9])
    d = codivide.co_divide_one(net, device_images, labels, LossHistory(1), p_threshold=0.5, seed=0, subset=subset)
    np.testing.assert_array_equal(d.indices(), subset)
    full = per_sample_loss(net, device_images, labels).numpy()
    np.testing.assert_allclose(d.loss, full[subset], rtol=1e-6)
    rows = division_rows(4, {1: d}, labels.numpy())
    np.testing.assert_array_equal(rows["sample_index"], subset)
    np.testing.assert_array_equal(rows["noisy_label"], labels.numpy()[subset])


@pytest.fixture(scope="module")
def clothing_run(tmp_path_factory, digits_data):
    """A tiny Clothing1M-protocol run on digits, with 100 test images lent as the validation set."""
    root = digits_run(digits_data, tmp_path_factory.mktemp("clothing"))
    raw = tiny_params(**{"train.epochs": 4, "train.protocol": "clothing1m", "train.num_batches": 3,
                         "train.lambda_u": 0.0, "train.conf_penalty": True})
    config = parse_config(raw)
    paths = run_paths(root)
    test_x, test_y = load_test_set(paths.prepared)
    # lend 100 test images as the clean validation set, as a folder data set with a val list has one
    np.save(paths.prepared / "val_images.npy", test_x[:100])
    np.save(paths.prepared / "val_labels.npy", test_y[:100])
    meta = json.loads((paths.prepared / "meta.json").read_text())
    (paths.prepared / "meta.json").write_text(json.dumps(meta | {"has_val": True, "n_val": 100}))
    run_warmup(config, paths, select(config, stage_params("warmup")))
    train_loop.run_train(config, paths, select(config, stage_params("train")))
    return root, config, (test_x[:100], test_y[:100])


def test_clothing1m_warmup_and_division_use_class_balanced_samples(clothing_run):
    from dividemix.files import artifacts

    root, config, _ = clothing_run
    warm = artifacts.read_table(root / "artifacts/warmup/losses.parquet", "losses")
    # 2 x num_batches x B = 384 samples per network and epoch, batch 2B: num_batches steps
    assert set(warm["n_labeled"]) == {384}
    assert warm.groupby(["epoch", "net"]).size().tolist() == [3, 3, 3, 3]
    divisions = artifacts.read_table(root / "artifacts/divisions", "divisions")
    noisy = artifacts.read_table(root / "data/noisy/labels.parquet", "noisy_labels")["noisy_label"].to_numpy()
    samples = {}
    for (epoch, net), group in divisions.groupby(["epoch", "net"]):
        index = group["sample_index"].to_numpy()
        assert len(index) == 3 * 64  # num_batches x B
        assert np.bincount(noisy[index], minlength=10).max() <= math.ceil(192 / 10)
        np.testing.assert_array_equal(group["noisy_label"].to_numpy(), noisy[index])
        samples[(epoch, net)] = set(index.tolist())
    assert samples[(2, 1)] != samples[(2, 2)] and samples[(2, 1)] != samples[(3, 1)]  # fresh per network and epoch
    losses = artifacts.read_table(root / "artifacts/losses", "losses")
    assert (losses["loss_u"] == 0).all() and (losses["lambda_u"] == 0).all()
    np.testing.assert_allclose(losses["loss"], losses["loss_x"] + losses["penalty"], rtol=1e-5)
    assert (losses["n_labeled"] + losses["n_unlabeled"] == 192).all()


def test_clothing1m_keeps_best_validation_weights_and_tests_their_ensemble(clothing_run):
    from dividemix.files import artifacts

    root, config, (val_x, val_y) = clothing_run
    epochs = pd.concat([artifacts.read_table(root / "artifacts/warmup/epochs.parquet", "epochs"),
                        artifacts.read_table(root / "artifacts/epochs", "epochs")])
    assert epochs[["val_acc_net1", "val_acc_net2", "test_acc_best_val"]].notna().all().all()
    state = torch.load(root / "checkpoints/train/last.pt", weights_only=True)["best_val"]
    for i in (1, 2):  # the best is the maximum over the epochs (the first of equals: strictly better)
        assert state["acc"][str(i)] == pytest.approx(epochs[f"val_acc_net{i}"].max())
    # test_acc_best_val is the test accuracy of the sum of the two best networks' logits
    test_x, test_y = load_test_set(root / "data/prepared")
    spec = SPECS["digits"]
    images = DeviceImages(test_x, spec, torch.device("cpu"))
    logits = 0
    for i in (1, 2):
        net = cnn_small(10, 1)
        net.load_state_dict(state["weights"][str(i)])
        logits = logits + eval_logits(net, images)
    expected = float((logits.argmax(1) == torch.as_tensor(test_y)).float().mean())
    assert epochs["test_acc_best_val"].iloc[-1] == pytest.approx(expected)
    # ... and val_acc_net1 is net1's validation accuracy that epoch: the best weights, where it peaked
    net = cnn_small(10, 1)
    net.load_state_dict(state["weights"]["1"])
    val = eval_logits(net, DeviceImages(val_x, spec, torch.device("cpu"))).argmax(1)
    assert float((val == torch.as_tensor(val_y)).float().mean()) == pytest.approx(state["acc"]["1"])


def test_clothing1m_refuses_a_loss_history_window():
    # Each epoch divides a new sample: there is no per-sample history to average.
    with pytest.raises(ConfigError, match="needs train.loss_history 1"):
        parse_config(tiny_params(**{"train.protocol": "clothing1m", "train.loss_history": 5}))


def test_epochs_files_of_schema_v1_are_read_with_null_validation_columns(tmp_path):
    """EPOCHS v2 added the validation columns; a v1 file (an older run) still reads, alone or mixed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dividemix.files import artifacts

    row = epoch_row(3, "dividemix", EpochTests(Accuracies(Accuracy(0.5), Accuracy(0.6), Accuracy(0.7))), {1: 10, 2: 11})
    artifacts.write_table(tmp_path / "epochs/epoch_004.parquet", "epochs", row | {"epoch": [4]})
    old = pa.Table.from_pydict({k: row[k] for k in artifacts.EPOCHS_V1.names}, schema=artifacts.EPOCHS_V1)
    old = old.replace_schema_metadata({b"dividemix.schema": b"epochs", b"dividemix.schema_version": b"1"})
    pq.write_table(old, tmp_path / "epochs/epoch_003.parquet")
    frame = artifacts.read_table(tmp_path / "epochs", "epochs")
    assert list(frame.columns) == artifacts.EPOCHS.names and list(frame["epoch"]) == [3, 4]
    assert frame["val_acc_net1"].isna().all() and list(frame["labeled_by_net2"]) == [11, 11]
    one = artifacts.read_table(tmp_path / "epochs/epoch_003.parquet", "epochs", columns=["epoch", "test_acc_best_val"])
    assert list(one.columns) == ["epoch", "test_acc_best_val"] and one["test_acc_best_val"].isna().all()
    bad = old.replace_schema_metadata({b"dividemix.schema": b"epochs", b"dividemix.schema_version": b"0"})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(artifacts.ArtifactError, match="v3"):
        artifacts.read_table(tmp_path / "bad.parquet", "epochs")
