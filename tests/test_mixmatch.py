"""One DivideMix step (sharpen, co-refine, co-guess, MixMatch, losses, ramp, penalties) and the epoch
around it (empty labeled / unlabeled sets, learning-rate schedule, derived seeds).

Expected values come from hand computation or from an independent numpy formula in the test.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from conftest import N_SMALL, tiny_params
from dividemix.config import parse_config
from dividemix.files import artifacts
from dividemix.method.codivide import Division, Mixture
from dividemix.method.losses import confidence_penalty, labeled_loss, prior_penalty, unlabeled_loss
from dividemix.method.mixmatch import (
    co_guess,
    co_refine,
    mix,
    mixup_coefficient,
    ramp_weight,
    sharpen,
)
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import learning_rate
from dividemix.training.streams import derived_seed
from dividemix.training.workspace import Workspace
from steps import (
    Lookup,
    assert_same_state,
    division,
    make_batch,
    nets_for,
    np_sharpen,
    np_softmax,
    stacked,
    state_copy,
    step,
    t,
    tiny_net,
)


# ------------------------------------------------------------------------------------ sharpen
def test_sharpen_by_hand():
    out = sharpen(t([[0.6, 0.4]]), 0.5)
    torch.testing.assert_close(out, t([[0.36 / 0.52, 0.16 / 0.52]]))


def test_sharpen_normalises_each_row():
    p = t([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    out = sharpen(p, 0.25)
    torch.testing.assert_close(out, t(np_sharpen(p.numpy(), 0.25)))
    torch.testing.assert_close(out.sum(1), torch.ones(2))


# ------------------------------------------------------------------------------- co-refinement
X1, X2 = torch.zeros(1, 1), torch.ones(1, 1)  # the stubs tell the two augmentations apart by value
REFINE_NET = Lookup({0: [2.0, 0.0, -1.0], 1: [0.0, 1.0, 0.0]})
Y_ONEHOT = t([[0.0, 0.0, 1.0]])


def test_co_refine_with_w_one_is_the_sharpened_one_hot_label():
    out = co_refine(REFINE_NET, X1, X2, Y_ONEHOT, t([[1.0]]), 0.5)
    torch.testing.assert_close(out, Y_ONEHOT)


def test_co_refine_with_w_zero_is_the_sharpened_mean_prediction():
    out = co_refine(REFINE_NET, X1, X2, Y_ONEHOT, t([[0.0]]), 0.5)
    px = (np_softmax([2.0, 0.0, -1.0]) + np_softmax([0.0, 1.0, 0.0])) / 2
    torch.testing.assert_close(out, t([np_sharpen(px, 0.5)]))


def test_co_refine_mixes_label_and_prediction_by_w_before_sharpening():
    out = co_refine(REFINE_NET, X1, X2, Y_ONEHOT, t([[0.3]]), 0.5)
    px = (np_softmax([2.0, 0.0, -1.0]) + np_softmax([0.0, 1.0, 0.0])) / 2
    expected = np_sharpen(0.3 * np.array([0.0, 0.0, 1.0]) + 0.7 * px, 0.5)
    torch.testing.assert_close(out, t([expected]))


# --------------------------------------------------------------------------------- co-guessing
def test_co_guess_averages_four_softmaxes_then_sharpens():
    net = Lookup({0: [1.0, 0.0, 0.0], 1: [0.0, 1.0, 0.0]})
    peer = Lookup({0: [0.0, 0.0, 2.0], 1: [0.0, 0.0, 0.0]})
    u1, u2 = torch.zeros(2, 1), torch.ones(2, 1)
    out = co_guess(net, peer, u1, u2, 0.5)
    pu = (np_softmax([1, 0, 0]) + np_softmax([0, 1, 0]) + np_softmax([0, 0, 2]) + np_softmax([0, 0, 0])) / 4
    expected = np_sharpen(pu, 0.5)
    torch.testing.assert_close(out, t([expected, expected]))
    assert net.calls == 2 and peer.calls == 2  # both networks on both augmentations
    # Not the same as softmax of the mean logits (the order of averaging matters).
    wrong = np_sharpen(np_softmax(np.mean([[1, 0, 0], [0, 1, 0], [0, 0, 2], [0, 0, 0]], axis=0)), 0.5)
    assert not np.allclose(expected, wrong, atol=1e-3)


# ------------------------------------------------------------------------------------- MixMatch
@pytest.mark.parametrize("alpha", [0.1, 0.75, 4.0])
def test_mixup_coefficient_is_at_least_one_half(alpha):
    rng = np.random.default_rng(0)
    draws = np.array([mixup_coefficient(alpha, rng) for _ in range(2000)])
    assert draws.min() >= 0.5 and draws.max() <= 1.0
    assert draws.std() > 0.01  # random, not a constant


def test_mix_with_lambda_one_returns_the_inputs():
    inputs, targets = torch.randn(8, 1, 4, 4), torch.rand(8, 3)
    mixed_inputs, mixed_targets = mix(inputs, targets, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(mixed_inputs, inputs) and torch.equal(mixed_targets, targets)


def test_mix_uses_one_permutation_for_inputs_and_targets_over_all_samples():
    n, lam = 64, 0.7
    inputs = torch.arange(n, dtype=torch.float64).view(n, 1)  # sample i is the number i ...
    targets = torch.eye(n, dtype=torch.float64)  # ... and its target marks i
    mixed_inputs, mixed_targets = mix(inputs, targets, lam, torch.Generator().manual_seed(3))
    # Recover the partner of each sample from the targets, then check the inputs used the same one.
    partner = torch.empty(n, dtype=torch.long)
    for i in range(n):
        row = mixed_targets[i].clone()
        row[i] -= lam
        partner[i] = int(row.argmax()) if row.max() > 1e-9 else i  # partner == i leaves 1.0 at i
        expected_row = torch.zeros(n, dtype=torch.float64)
        expected_row[i] += lam
        expected_row[partner[i]] += 1 - lam
        torch.testing.assert_close(mixed_targets[i], expected_row)
    torch.testing.assert_close(mixed_inputs[:, 0], lam * torch.arange(n, dtype=torch.float64) + (1 - lam) * partner)
    assert sorted(partner.tolist()) == list(range(n))  # a permutation
    # Labeled (first half) and unlabeled (second half) samples mix with each other.
    assert (partner[: n // 2] >= n // 2).any() and (partner[n // 2 :] < n // 2).any()


# --------------------------------------------------------------------------------------- losses
LOGITS = [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]
TARGETS = [[0.2, 0.7, 0.1], [0.0, 0.25, 0.75]]


def test_labeled_loss_is_soft_cross_entropy_by_hand():
    expected = 0.0
    for z, q in zip(LOGITS, TARGETS):
        log_norm = math.log(sum(math.exp(v) for v in z))
        expected += -sum(qc * (zc - log_norm) for zc, qc in zip(z, q))
    expected /= 2  # mean over the batch
    assert float(labeled_loss(t(LOGITS), t(TARGETS))) == pytest.approx(expected, rel=1e-6)


def test_unlabeled_loss_is_mse_averaged_over_batch_and_classes():
    p = np_softmax(LOGITS)
    squared = (p - np.array(TARGETS)) ** 2
    expected = squared.sum() / 6  # 2 samples x 3 classes
    out = float(unlabeled_loss(t(LOGITS), t(TARGETS)))
    assert out == pytest.approx(expected, rel=1e-6)
    assert out != pytest.approx(squared.sum() / 2, rel=1e-3)  # not only over the batch


def test_unlabeled_loss_of_an_empty_batch_is_zero():
    out = unlabeled_loss(torch.empty(0, 3), torch.empty(0, 3))
    assert out.shape == () and float(out) == 0.0 and not torch.isnan(out)


@pytest.mark.parametrize(
    ("progress", "expected"),
    [(0.0, 0.0), (9.5, 0.0), (10.0, 0.0), (10.5, 25 * 0.5 / 16), (18.0, 12.5), (26.0, 25.0), (30.0, 25.0), (100.0, 25.0)],
)
def test_ramp_weight(progress, expected):
    assert ramp_weight(25.0, progress, warmup_epochs=10, rampup_epochs=16) == pytest.approx(expected)


def test_prior_penalty_is_zero_for_uniform_predictions():
    assert abs(float(prior_penalty(torch.zeros(4, 5), 5))) < 1e-6
    # Each row confident, but on different classes: the *mean* prediction is uniform.
    assert abs(float(prior_penalty(10 * torch.eye(3), 3))) < 1e-6


def test_prior_penalty_is_kl_of_uniform_prior_to_mean_prediction():
    pred_mean = np_softmax(LOGITS).mean(0)
    expected = sum((1 / 3) * math.log((1 / 3) / pm) for pm in pred_mean)
    assert expected > 0.01
    assert float(prior_penalty(t(LOGITS), 3)) == pytest.approx(expected, rel=1e-5)


def test_confidence_penalty_is_the_negative_entropy():
    p = np_softmax(LOGITS)
    expected = float(np.mean(np.sum(p * np.log(p), axis=1)))
    assert expected < 0
    assert float(confidence_penalty(t(LOGITS))) == pytest.approx(expected, rel=1e-5)
    assert float(confidence_penalty(torch.zeros(2, 4))) == pytest.approx(-math.log(4), rel=1e-6)


def test_confidence_penalty_is_finite_for_a_very_confident_prediction():
    # Entropy of [~0, ~1] is ~0: the penalty must be ~0, not NaN (it is added to the warm-up loss).
    assert float(confidence_penalty(t([[0.0, 200.0]]))) == pytest.approx(0.0, abs=1e-6)


def test_sharpen_with_a_small_temperature_stays_a_distribution():
    out = sharpen(torch.full((1, 10), 0.1), 0.02)  # (0.1) ** 50 underflows in float32
    torch.testing.assert_close(out, torch.full((1, 10), 0.1))


# ----------------------------------------------------------------------------------- train step
def run_step(net, peer, batch, lambda_u=25.0):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return stacked(step(net, peer, optimizer, batch, lambda_u=lambda_u))


def independent_step(net, batch, lambda_u: float, monkeypatch):
    """What one step must optimise, computed here from the mixed batch it drew: (losses, update).

    The mixed inputs and targets are taken from `mix`; Lx, Lu and the prior penalty are recomputed
    by the reference's formulas on a copy of the network, and the first SGD step with momentum
    0.9 from zero is w - lr * grad. Returns ((loss_x, loss_u, penalty, loss), {name: new weight}).
    """
    import dividemix.method.mixmatch as mixmatch_module

    seen = {}
    real_mix = mixmatch_module.mix

    def spy(inputs, targets, lam, generator, **kwargs):
        seen["mixed"] = real_mix(inputs, targets, lam, generator, **kwargs)
        return seen["mixed"]

    monkeypatch.setattr(mixmatch_module, "mix", spy)
    copy_net = copy.deepcopy(net)
    returned = run_step(net, tiny_net(1).eval(), batch, lambda_u=lambda_u)
    mixed_inputs, mixed_targets = seen["mixed"]
    b = len(batch.x1)
    logits = copy_net(mixed_inputs)  # train mode, as the step's forward
    probs = torch.softmax(logits, 1)
    loss_x = -(torch.log_softmax(logits[: 2 * b], 1) * mixed_targets[: 2 * b]).sum(1).mean()
    loss_u = ((probs[2 * b :] - mixed_targets[2 * b :]) ** 2).mean() if len(logits) > 2 * b else logits.new_zeros(())
    prior = torch.full((3,), 1 / 3)
    penalty = (prior * torch.log(prior / probs.mean(0))).sum()
    total = loss_x + lambda_u * loss_u + penalty
    total.backward()
    updated = {name: (p - 0.1 * p.grad).detach() for name, p in copy_net.named_parameters()}
    return returned, torch.stack([loss_x, loss_u, penalty, total]).detach(), updated


def test_train_step_with_an_empty_unlabeled_batch(monkeypatch):
    net = tiny_net(0)
    out, expected, updated = independent_step(net, make_batch(6, 0), 25.0, monkeypatch)
    assert out.shape == (4,) and out[1] == 0.0  # no unlabeled samples: Lu = 0
    torch.testing.assert_close(out, expected)
    for name, p in net.named_parameters():  # the step optimised Lx + penalty alone
        torch.testing.assert_close(p.detach(), updated[name])


def test_train_step_optimises_lx_plus_lambda_lu_plus_penalty(monkeypatch):
    """The returned losses and the update both follow the reference's total, with lambda_u = 7."""
    net = tiny_net(0)
    out, expected, updated = independent_step(net, make_batch(6, 5), 7.0, monkeypatch)
    assert out[1] > 0 and out[2] >= 0
    torch.testing.assert_close(out, expected)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), updated[name])


def test_train_step_leaves_the_peer_untouched():
    net, peer = tiny_net(0), tiny_net(1)
    with torch.no_grad():  # non-default BatchNorm statistics in the peer
        peer.train()(torch.randn(32, 4) * 3 + 1)
    peer.eval()  # as dividemix_epoch sets it
    before = state_copy(peer)
    run_step(net, peer, make_batch(6, 5))
    assert_same_state(peer, before)  # parameters and BatchNorm buffers
    assert all(p.grad is None for p in peer.parameters())
    assert all(p.grad is not None for p in net.parameters())


# ------------------------------------------------------------------------------ DivideMix epoch
def test_dividemix_epoch_with_an_empty_labeled_set_skips_and_leaves_the_net_unchanged(small_ws):
    net, peer, optimizer = nets_for(small_ws)
    net_before, peer_before = state_copy(net), state_copy(peer)
    rows = dividemix_epoch(net, peer, optimizer, small_ws, division(np.zeros(N_SMALL, dtype=bool)), 2, 1)
    assert set(rows) == set(artifacts.LOSSES.names)
    assert all(len(v) == 0 for v in rows.values())
    assert_same_state(net, net_before)
    assert_same_state(peer, peer_before)
    assert all(p.grad is None for p in net.parameters())


def test_dividemix_epoch_with_an_empty_unlabeled_set_trains_on_labeled_alone(small_ws):
    net, peer, optimizer = nets_for(small_ws)
    net_before = state_copy(net)
    rows = dividemix_epoch(net, peer, optimizer, small_ws, division(np.ones(N_SMALL, dtype=bool)), 2, 1)
    # ceil(200 / 64) = 4 steps; num_iter = 200 // 64 + 1 = 4; lambda = 25 * clip((2 + s/4 - 2) / 16, 0, 1).
    assert rows["step"] == [0, 1, 2, 3]
    assert rows["lambda_u"] == pytest.approx([25 * s / 4 / 16 for s in range(4)])
    assert rows["loss_u"] == [0.0] * 4
    assert rows["n_labeled"] == [N_SMALL] * 4 and rows["n_unlabeled"] == [0] * 4
    assert rows["lr"] == [0.02] * 4
    assert np.isfinite(rows["loss_x"]).all() and np.isfinite(rows["loss"]).all()
    assert not torch.equal(net.state_dict()["0.0.weight"], net_before["0.0.weight"])


def test_dividemix_epoch_leaves_the_peer_untouched_and_uses_the_dropped_lr(small_ws):
    net, peer, optimizer = nets_for(small_ws)
    peer.train()  # as net1 is when it becomes net2's peer: dividemix_epoch must put it in eval mode
    peer_before = state_copy(peer)
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[:130] = True
    rows = dividemix_epoch(net, peer, optimizer, small_ws, division(labeled), 3, 2)
    # 130 labeled: ceil(130 / 64) = 3 steps; the unlabeled iterator (70) restarts when exhausted.
    assert rows["step"] == [0, 1, 2]
    assert rows["n_labeled"] == [130] * 3 and rows["n_unlabeled"] == [70] * 3
    assert all(v > 0 for v in rows["loss_u"])
    assert rows["lr"] == [pytest.approx(0.002)] * 3  # epoch 3 = lr_drop_epoch
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.002)
    assert_same_state(peer, peer_before)
    assert all(p.grad is None for p in peer.parameters())


def test_learning_rate_drops_by_ten_at_lr_drop_epoch_exactly():
    train = parse_config(tiny_params(**{"train.epochs": 30, "train.lr": 0.05, "train.lr_drop_epoch": 15})).train
    assert learning_rate(train, 0) == 0.05
    assert learning_rate(train, 14) == 0.05
    assert learning_rate(train, 15) == pytest.approx(0.005)
    assert learning_rate(train, 29) == pytest.approx(0.005)


def test_derived_seed_differs_across_epoch_net_and_purpose():
    seeds = {(e, n, p): derived_seed(123, e, n, p) for e in range(6) for n in (1, 2) for p in range(6)}
    assert len(set(seeds.values())) == len(seeds)
    assert derived_seed(123, 2, 1, 0) != derived_seed(123, 1, 2, 0)  # key order matters
    assert derived_seed(123, 2, 1, 0) != derived_seed(124, 2, 1, 0)  # the run's seed matters
    # and nothing else: a pinned value (a changed derivation would change every run, and resume an
    # old checkpoint with other draws than the ones it was made with)
    assert derived_seed(123, 2, 1, 0) == 424754644323180973
    assert all(0 <= s < 2**63 for s in seeds.values())  # valid for torch.Generator.manual_seed


# ------------------------------------------------------------------- the Clothing1M protocol step
def test_mix_keep_is_the_first_rows_of_the_full_mix():
    inputs, targets = torch.randn(12, 3), torch.rand(12, 4)
    full = mix(inputs, targets, 0.7, torch.Generator().manual_seed(2))
    kept = mix(inputs, targets, 0.7, torch.Generator().manual_seed(2), keep=4)
    assert torch.equal(kept[0], full[0][:4]) and torch.equal(kept[1], full[1][:4])


def test_clothing1m_step_trains_on_the_2b_labeled_mixed_samples_with_lx_and_penalty(monkeypatch):
    import dividemix.method.mixmatch as mixmatch

    mixed = []
    real_mix = mixmatch.mix

    def spy(inputs, targets, lam, generator, **kwargs):
        out = real_mix(inputs, targets, lam, generator, **kwargs)
        mixed.append((inputs, out))
        return out

    monkeypatch.setattr(mixmatch, "mix", spy)
    b, bu = 6, 5
    for protocol, forwarded in (("cifar", 2 * b + 2 * bu), ("clothing1m", 2 * b)):
        net, peer = tiny_net(0), tiny_net(1).eval()
        sizes, outputs = [], []

        def record(module, args, out):
            sizes.append(len(args[0]))
            outputs.append(out)

        net.register_forward_hook(record)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        result = stacked(step(net, peer, optimizer, make_batch(b, bu), lambda_u=7.0, protocol=protocol))
        # guess (2 x B' by the net), refine (2 x B), as the reference's order; then the one pass with gradients
        assert sizes == [bu, bu, b, b, forwarded]
        loss_x, loss_u, penalty, loss = result.tolist()
        inputs, (mixed_inputs, mixed_targets) = mixed[-1]
        assert len(inputs) == 2 * b + 2 * bu  # partners are drawn from all 4B samples either way
        logits = outputs[-1].detach()
        if protocol == "clothing1m":
            assert loss_u == 0.0
            assert loss_x == pytest.approx(float(labeled_loss(logits, mixed_targets)), rel=1e-6)
            assert penalty == pytest.approx(float(prior_penalty(logits, 3)), rel=1e-5, abs=1e-7)
            assert loss == pytest.approx(loss_x + penalty, rel=1e-6)
        else:
            assert loss_u > 0 and loss == pytest.approx(loss_x + 7.0 * loss_u + penalty, rel=1e-5)


def test_train_step_refuses_an_unknown_protocol():
    with pytest.raises(ValueError, match="train.protocol"):
        step(tiny_net(0), tiny_net(1), torch.optim.SGD(tiny_net(0).parameters(), lr=0.1), make_batch(2, 2),
             lambda_u=0.0, protocol="imagenet")


def test_clothing1m_epoch_trains_on_the_divided_subset_with_no_lu(small_ws):
    from dataclasses import replace

    ws = replace(small_ws, config=parse_config(tiny_params(**{"train.protocol": "clothing1m"})))
    net, peer, optimizer = nets_for(ws)
    subset = np.arange(0, N_SMALL, 2)  # 100 samples: 70 labeled, 30 unlabeled
    labeled = np.zeros(len(subset), dtype=bool)
    labeled[:70] = True
    d = Division(
        loss=np.zeros(100), loss_norm=np.zeros(100), clean_prob=np.where(labeled, 0.9, 0.1), labeled=labeled,
        mixture=Mixture(means=(0.1, 0.9), variances=(0.01, 0.01), weights=(0.5, 0.5), clean=0), sample_index=subset,
    )
    drawn = []
    real_pair = Workspace.train_pair

    def spy(self, index, generator):
        drawn.append(index.clone())
        return real_pair(self, index, generator)

    import unittest.mock

    with unittest.mock.patch.object(Workspace, "train_pair", spy):
        rows = dividemix_epoch(net, peer, optimizer, ws, d, 2, 1)
    assert rows["step"] == [0, 1]  # ceil(70 / 64)
    assert rows["n_labeled"] == [70, 70] and rows["n_unlabeled"] == [30, 30]
    assert rows["loss_u"] == [0.0, 0.0] and rows["lambda_u"] == [0.0, 0.0]
    x_drawn = torch.cat([drawn[k] for k in (0, 2)])  # x1 and x2 (one pair) of each step
    u_drawn = torch.cat([drawn[k] for k in (1, 3)])
    assert set(x_drawn.tolist()) == set(subset[:70].tolist())
    assert set(u_drawn.tolist()) <= set(subset[70:].tolist())


def test_the_peer_takes_the_writers_batchnorm_statistics_before_it_guesses(small_ws, monkeypatch):
    """Under several processes each one's training passes move its own BatchNorm statistics: the
    peer (net 1 in net 2's epoch) is synced to the writer's before its first guess, every epoch."""
    from dividemix.cluster.group import Cluster

    net, peer, optimizer = nets_for(small_ws)
    guesses = []
    peer.register_forward_hook(lambda module, args, out: guesses.append(1))
    synced = []
    monkeypatch.setattr(Cluster, "sync_buffers", lambda self, module: synced.append((module, len(guesses))))
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[: N_SMALL // 2] = True
    dividemix_epoch(net, peer, optimizer, small_ws, division(labeled), 2, 1)
    assert guesses and synced[0] == (peer, 0)  # synced, and before the first of its passes
