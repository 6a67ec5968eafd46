"""Details of the official code that every other test would let slip: each test here fails when one
of them is changed (BatchNorm modes and pass order, per-sample clean probabilities, the mixture's
settings, the logit ensemble, the unlabeled iterator, the min-max normalisation, atomic writes).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dividemix.method.codivide as codivide
import dividemix.training.dividemix_epoch as dividemix_epoch_module
from conftest import N_SMALL
from dividemix.files import artifacts
from dividemix.files.atomic import write_json_atomic
from dividemix.method.codivide import Division, LossHistory, Mixture, co_divide_one, fit_mixture
from dividemix.method.models import cnn_small
from dividemix.training.checkpoint import save_checkpoint
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.sampling import batches, endless_batches
from dividemix.training.testing import ensemble_accuracy
from steps import division, make_batch, nets_for, step, tiny_net, top1s


# ---------------------------------------------------------------- BatchNorm modes and pass order
def record_passes(net: nn.Module, name: str, log: list) -> None:
    net.register_forward_pre_hook(lambda module, args: log.append((name, module.training, torch.is_grad_enabled(),
                                                                   args[0])))


def test_the_trained_network_guesses_in_train_mode_in_the_reference_order():
    """Train_cifar.py: net(u1), net(u2), net2(u1), net2(u2), net(x1), net(x2) under no_grad, `net` in
    train mode (its BatchNorm statistics move, in that order) and the peer in eval mode; then one
    forward of the mixed batch with gradients."""
    net, peer = tiny_net(0), tiny_net(1)
    net.train()
    batch = make_batch(6, 5)
    log: list = []
    record_passes(net, "net", log)
    record_passes(peer, "peer", log)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    step(net, peer, optimizer, batch, lambda_u=1.0)
    inputs = {"u1": batch.u1, "u2": batch.u2, "x1": batch.x1, "x2": batch.x2}
    seen = []
    for who, training, grad, x in log:
        which = next((key for key, value in inputs.items() if x.shape == value.shape and torch.equal(x, value)), "mixed")
        seen.append((who, which, training, grad))
    assert seen == [
        ("net", "u1", True, False), ("net", "u2", True, False),
        ("peer", "u1", False, False), ("peer", "u2", False, False),
        ("net", "x1", True, False), ("net", "x2", True, False),
        ("net", "mixed", True, True),
    ]


# -------------------------------------------------------------- each sample's own w and label
def test_each_labeled_sample_is_refined_with_its_own_clean_probability_and_label(small_ws, monkeypatch):
    """The step gets w_i = clean_prob[i] and y_i = noisy_label[i] for exactly the samples of x1/x2
    (every sample a different w: a shifted, shuffled or inverted w (1 - w) is caught)."""
    ws = small_ws
    net, peer, optimizer = nets_for(ws)
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[:130] = True
    clean_prob = np.linspace(0.01, 0.99, N_SMALL)  # distinct for every sample
    division = Division(loss=np.zeros(N_SMALL), loss_norm=np.zeros(N_SMALL), clean_prob=clean_prob, labeled=labeled,
                        mixture=Mixture(means=(0.1, 0.9), variances=(0.01, 0.01), weights=(0.5, 0.5), clean=0))
    drawn, steps = [], []
    real_pair, real_step = type(ws).train_pair, dividemix_epoch_module.train_step

    def recording_pair(self, index, generator):
        drawn.append(index.clone())
        return real_pair(self, index, generator)

    def recording_step(net, peer, optimizer, batch, **kwargs):
        steps.append(batch)
        return real_step(net, peer, optimizer, batch, **kwargs)

    monkeypatch.setattr(type(ws), "train_pair", recording_pair)
    monkeypatch.setattr(dividemix_epoch_module, "train_step", recording_step)
    dividemix_epoch(net, peer, optimizer, ws, division, 2, 1)
    # (x1, x2) then (u1, u2) per step: each pair two augmentations of the same samples, read once
    assert len(steps) == 3 and len(drawn) == 2 * len(steps)
    for k, batch in enumerate(steps):
        x_index = drawn[2 * k]
        torch.testing.assert_close(batch.w, torch.as_tensor(clean_prob[x_index.numpy()], dtype=torch.float32))
        assert torch.equal(batch.y, ws.noisy_labels[x_index])
        assert labeled[x_index.numpy()].all() and not labeled[drawn[2 * k + 1].numpy()].any()


# ---------------------------------------------------------------------- the mixture's settings
def test_the_mixture_is_the_reference_gaussian_mixture(monkeypatch):
    """GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4), seeded here (the
    reference leaves random_state unset): settings any well-separated test data would not pin."""
    made = []
    real = codivide.GaussianMixture

    class Recording(real):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(codivide, "GaussianMixture", Recording)
    fit_mixture(np.random.default_rng(0).random(100), seed=2**32 + 7)
    assert made == [{"n_components": 2, "max_iter": 10, "tol": 1e-2, "reg_covar": 5e-4, "random_state": 7}]


# ------------------------------------------------------------------------------ the ensemble
class FixedLogits(nn.Module):
    def __init__(self, row: list[float]):
        super().__init__()
        self.row = torch.tensor(row)
        self.anchor = nn.Parameter(torch.zeros(()))  # .eval()/.train() need a module; no weights used

    def forward(self, x):
        return self.row.expand(len(x), -1)


def test_the_ensemble_sums_logits_not_probabilities(small_ws):
    """Logits (3, -1, -3) + (-3, 4, 5) = (0, 3, 2): class 1; the summed softmaxes would say class 0."""
    ws = copy.copy(small_ws)
    ws.test_labels = torch.ones(len(ws.test_images), dtype=torch.int64)
    accs = ensemble_accuracy([FixedLogits([3.0, -1.0, -3.0]), FixedLogits([-3.0, 4.0, 5.0])], ws)
    assert top1s(accs) == [0.0, 0.0, 1.0]  # each network alone: class 0 and class 2; the ensemble: class 1


# ------------------------------------------------------------------- the unlabeled iterator
def test_batches_keep_the_last_partial_batch():
    sizes = [len(b) for b in batches(torch.arange(10), 4, torch.Generator().manual_seed(0))]
    assert sizes == [4, 4, 2]


def test_the_unlabeled_iterator_reshuffles_each_pass_and_keeps_its_partial_batch():
    """The reference's `iter(unlabeled_trainloader)` restarted when exhausted: a new shuffle each
    pass, every sample once per pass, no drop_last."""
    stream = endless_batches(torch.arange(10), 4, torch.Generator().manual_seed(0))
    passes = [[next(stream) for _ in range(3)] for _ in range(2)]
    for one in passes:
        assert [len(b) for b in one] == [4, 4, 2]
        assert sorted(torch.cat(one).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(passes[0]), torch.cat(passes[1]))


def test_a_dividemix_epoch_draws_unlabeled_batches_as_the_reference(small_ws, monkeypatch):
    """130 labeled, 70 unlabeled, B = 64: unlabeled batches of 64, then the last 6, then 64 of a new pass."""
    ws = small_ws
    net, peer, optimizer = nets_for(ws)
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[:130] = True
    sizes = []
    real_step = dividemix_epoch_module.train_step

    def recording_step(net, peer, optimizer, batch, **kwargs):
        sizes.append(len(batch.u1))
        return real_step(net, peer, optimizer, batch, **kwargs)

    monkeypatch.setattr(dividemix_epoch_module, "train_step", recording_step)
    dividemix_epoch(net, peer, optimizer, ws, division(labeled), 2, 1)
    assert sizes == [64, 6, 64]


# ------------------------------------------------------------------- min-max normalisation
def test_co_divide_fits_the_mixture_on_min_max_normalised_losses(small_ws):
    """loss_norm is (loss - min) / (max - min) of the raw per-sample losses: it spans [0, 1] exactly."""
    ws = small_ws
    torch.manual_seed(0)
    net = cnn_small(10, 1)
    division = co_divide_one(net, ws.train_images, ws.noisy_labels, LossHistory(1), p_threshold=0.5, seed=0)
    loss = division.loss.astype(np.float64)
    assert loss.max() > 1.0  # raw cross-entropy of an untrained net: not already in [0, 1]
    expected = (loss - loss.min()) / (loss.max() - loss.min())
    np.testing.assert_allclose(division.loss_norm, expected, rtol=1e-5, atol=1e-6)
    assert division.loss_norm.min() == 0.0 and division.loss_norm.max() == pytest.approx(1.0)


# ---------------------------------------------------------------------------- atomic writes
def test_a_parquet_write_that_fails_halfway_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "losses.parquet"
    artifacts.write_table(path, "noisy_labels", {"sample_index": [0, 1], "noisy_label": [3, 4]})
    before = path.read_bytes()
    import pyarrow.parquet as pq

    real = pq.write_table

    def half_written(table, where, **kwargs):  # writes half a file where it is told, then fails
        real(table, where, **kwargs)
        data = Path(where).read_bytes()
        Path(where).write_bytes(data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", half_written)
    with pytest.raises(OSError, match="simulated"):
        artifacts.write_table(path, "noisy_labels", {"sample_index": [0, 1], "noisy_label": [5, 6]})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["losses.parquet"]  # no temporary file left


def test_a_json_or_checkpoint_write_that_fails_halfway_leaves_the_old_file(tmp_path, monkeypatch):
    metrics, checkpoint = tmp_path / "eval.json", tmp_path / "last.pt"
    write_json_atomic(metrics, {"a": 1})
    save_checkpoint(checkpoint, {"epoch": 1})
    before = metrics.read_bytes(), checkpoint.read_bytes()
    real_text, real_bytes = Path.write_text, Path.write_bytes

    def failing_text(self, data, *args, **kwargs):
        real_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError("disk full (simulated)")

    def failing_bytes(self, data):
        real_bytes(self, data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Path, "write_text", failing_text)
    monkeypatch.setattr(Path, "write_bytes", failing_bytes)
    with pytest.raises(OSError, match="simulated"):
        write_json_atomic(metrics, {"a": 2})
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(checkpoint, {"epoch": 2})
    assert (metrics.read_bytes(), checkpoint.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "last.pt"]
