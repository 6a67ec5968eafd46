"""Label noise: the reference's semantics (which samples, how many, which labels), checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from dividemix.datasets.prepared import write_prepared
from dividemix.datasets.registry import SPECS
from dividemix.noise.inject import inject_noise, noisy_indices, noisy_label_file

C = 10
# The digits asymmetric map written out by hand: 7<->1, 3<->8, 5<->6; 0, 2, 4, 9 keep their label.
DIGITS_ASYM = np.array([0, 7, 2, 8, 4, 6, 5, 1, 3, 9])
UNMAPPED = [0, 2, 4, 9]


def sym(labels, rate, seed):
    return inject_noise(labels, mode="sym", rate=rate, seed=seed, num_classes=C, asym_map=None)


def asym(labels, rate, seed):
    return inject_noise(labels, mode="asym", rate=rate, seed=seed, num_classes=C, asym_map=SPECS["digits"].asym_map)


def picked_by_asym(n: int, rate: float, seed: int) -> np.ndarray:
    """The picked set, observed from outside: with every label 7 (mapped to 1), a picked sample always changes."""
    sevens = np.full(n, 7, dtype=np.int64)
    return np.flatnonzero(asym(sevens, rate, seed) != sevens)


# ------------------------------------------------------------------------------------ symmetric
def test_symmetric_noise_keeps_the_true_label_with_probability_one_over_c():
    labels = np.random.default_rng(42).integers(0, C, size=100_000)
    noisy = sym(labels, 1.0, seed=3)
    kept = (noisy == labels).mean()
    # Reference semantics: the new label is drawn from *all* classes, the true one included.
    assert kept == pytest.approx(0.1, abs=0.005)


def test_symmetric_noise_draws_new_labels_uniformly_over_all_classes():
    labels = np.zeros(100_000, dtype=np.int64)
    noisy = sym(labels, 1.0, seed=4)
    freq = np.bincount(noisy, minlength=C) / len(noisy)
    assert freq.shape == (C,)
    np.testing.assert_allclose(freq, np.full(C, 0.1), atol=0.005)


def test_symmetric_actual_wrong_rate_is_rate_times_one_minus_one_over_c():
    labels = np.random.default_rng(0).integers(0, C, size=100_000)
    noisy = sym(labels, 0.5, seed=5)
    assert (noisy != labels).mean() == pytest.approx(0.5 * (1 - 1 / C), abs=0.005)


@pytest.mark.parametrize(("n", "rate", "expected"), [(100, 0.29, 28), (100, 0.5, 50), (1437, 0.5, 718), (10, 1.0, 10)])
def test_exactly_int_rate_times_n_samples_are_picked(n, rate, expected):
    # int(), not round(): 0.29 * 100 is 28.999999999999996 in floating point, so 28 (the reference's quirk).
    picked = noisy_indices(n, rate, np.random.default_rng(0))
    assert len(picked) == expected
    assert len(np.unique(picked)) == expected
    assert picked.min() >= 0 and picked.max() < n
    # The same count through the public path (asym on all-7 labels changes every picked sample).
    assert len(picked_by_asym(n, rate, seed=11)) == expected


def test_symmetric_noise_leaves_samples_outside_the_picked_set_untouched():
    n, rate, seed = 5000, 0.3, 9
    labels = np.random.default_rng(1).integers(0, C, size=n)
    noisy = sym(labels, rate, seed)
    picked = picked_by_asym(n, rate, seed)  # both modes pick the same samples for a seed
    assert len(picked) == 1500
    outside = np.setdiff1d(np.arange(n), picked)
    np.testing.assert_array_equal(noisy[outside], labels[outside])
    changed = np.flatnonzero(noisy != labels)
    assert np.isin(changed, picked).all()
    # Most picked samples did change (9 in 10 on average): the picked set is really re-drawn.
    assert 0.85 < len(changed) / len(picked) < 0.95


def test_noise_does_not_modify_its_input_array():
    labels = np.arange(100) % C
    before = labels.copy()
    sym(labels, 1.0, seed=0)
    asym(labels, 1.0, seed=0)
    np.testing.assert_array_equal(labels, before)


# ----------------------------------------------------------------------------------- asymmetric
def test_digits_asym_map_is_the_documented_one():
    assert SPECS["digits"].asym_map == {7: 1, 1: 7, 3: 8, 8: 3, 5: 6, 6: 5}


def test_asymmetric_noise_at_rate_one_maps_every_label():
    labels = np.repeat(np.arange(C), 50)
    noisy = asym(labels, 1.0, seed=2)
    np.testing.assert_array_equal(noisy, DIGITS_ASYM[labels])


def test_asymmetric_noise_maps_only_picked_samples_and_never_touches_unmapped_classes():
    n, rate, seed = 3000, 0.4, 7
    labels = np.random.default_rng(3).integers(0, C, size=n)
    noisy = asym(labels, rate, seed)
    picked = picked_by_asym(n, rate, seed)
    assert len(picked) == int(rate * n)
    outside = np.setdiff1d(np.arange(n), picked)
    np.testing.assert_array_equal(noisy[outside], labels[outside])
    np.testing.assert_array_equal(noisy[picked], DIGITS_ASYM[labels[picked]])
    unmapped = np.isin(labels, UNMAPPED)
    np.testing.assert_array_equal(noisy[unmapped], labels[unmapped])
    # Every picked sample of a mapped class changed, so the wrong rate is rate * share of mapped classes.
    mapped_picked = picked[~np.isin(labels[picked], UNMAPPED)]
    assert (noisy[mapped_picked] != labels[mapped_picked]).all()


def test_asym_without_a_map_is_refused():
    with pytest.raises(ValueError, match="asym"):
        inject_noise(np.zeros(10, dtype=np.int64), mode="asym", rate=0.5, seed=0, num_classes=C, asym_map=None)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="pairflip"):
        inject_noise(np.zeros(10, dtype=np.int64), mode="pairflip", rate=0.5, seed=0, num_classes=C, asym_map=None)


# ------------------------------------------------------------------------------ seeds, no noise
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_same_seed_same_labels_other_seed_other_labels(mode):
    labels = np.random.default_rng(8).integers(0, C, size=2000)
    make = sym if mode == "sym" else asym
    a, b, c = make(labels, 0.5, 1), make(labels, 0.5, 1), make(labels, 0.5, 2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).sum() > 100


@pytest.mark.parametrize(("mode", "rate"), [("none", 0.5), ("none", 1.0), ("sym", 0.0), ("asym", 0.0)])
def test_no_noise_returns_labels_unchanged(mode, rate):
    labels = np.random.default_rng(2).integers(0, C, size=500)
    noisy = inject_noise(labels, mode=mode, rate=rate, seed=0, num_classes=C, asym_map=SPECS["digits"].asym_map)
    np.testing.assert_array_equal(noisy, labels)
    assert noisy is not labels  # a copy: corrupting it later must not corrupt the truth


# ---------------------------------------------------------------------------------- noise stage
@pytest.fixture
def prepared(tmp_path):
    rng = np.random.default_rng(0)
    n = 2000
    truth = np.repeat(np.arange(C), n // C)
    rng.shuffle(truth)
    images = rng.integers(0, 17, size=(n, 1, 8, 8), dtype=np.uint8)
    write_prepared(SPECS["digits"], tmp_path / "prepared", images, truth, images[:20], truth[:20])
    return tmp_path / "prepared", truth


def test_noisy_label_file_writes_parquet_and_returns_actual_rate(prepared, tmp_path):
    folder, truth = prepared
    out = tmp_path / "noisy" / "labels.parquet"
    summary = noisy_label_file(dataset="digits", prepared=folder, out=out, mode="sym", rate=0.5, seed=1)

    table = pq.read_table(out)
    assert table.column_names == ["sample_index", "noisy_label"]
    assert str(table.schema.field("sample_index").type) == "int64"
    assert str(table.schema.field("noisy_label").type) == "int64"
    index = table.column("sample_index").to_numpy()
    noisy = table.column("noisy_label").to_numpy()
    np.testing.assert_array_equal(index, np.arange(len(truth)))
    assert noisy.min() >= 0 and noisy.max() < C

    wrong = noisy != truth
    assert summary["n_train"] == len(truth)
    assert summary["n_wrong"] == int(wrong.sum())
    assert summary["noise_rate_actual"] == pytest.approx(wrong.mean())
    # sym keeps the true label 1 time in C: the actual rate is below the nominal one.
    assert summary["noise_rate_actual"] == pytest.approx(0.45, abs=0.03)
    assert summary["rate"] == 0.5 and summary["mode"] == "sym" and summary["seed"] == 1
    json.dumps(summary)  # the stage writes it as a JSON metric
    # The labels in the file are exactly inject_noise's on the truth (same seed).
    np.testing.assert_array_equal(noisy, sym(truth, 0.5, 1))


def test_noisy_label_file_mode_none_has_zero_actual_rate(prepared, tmp_path):
    folder, truth = prepared
    out = tmp_path / "labels.parquet"
    summary = noisy_label_file(dataset="digits", prepared=folder, out=out, mode="none", rate=0.5, seed=1)
    np.testing.assert_array_equal(pq.read_table(out).column("noisy_label").to_numpy(), truth)
    assert summary["n_wrong"] == 0 and summary["noise_rate_actual"] == 0.0


# ------------------------------------------------------------------ sym_true (the appendix's "true noise")
def sym_true(labels, rate, seed, num_classes=C):
    return inject_noise(labels, mode="sym_true", rate=rate, seed=seed, num_classes=num_classes, asym_map=None)


def test_sym_true_changes_every_picked_label_and_only_those():
    n, rate, seed = 5000, 0.3, 9
    labels = np.random.default_rng(1).integers(0, C, size=n)
    noisy = sym_true(labels, rate, seed)
    picked = picked_by_asym(n, rate, seed)  # the same picked set as sym and asym for a seed
    changed = np.flatnonzero(noisy != labels)
    np.testing.assert_array_equal(changed, picked)  # every picked sample changed, no other did
    assert (noisy != labels).mean() == int(rate * n) / n  # the wrong-label rate is exactly the rate


def test_sym_true_draws_uniformly_over_the_other_classes():
    labels = np.full(90_000, 3, dtype=np.int64)
    noisy = sym_true(labels, 1.0, seed=4)
    freq = np.bincount(noisy, minlength=C) / len(noisy)
    assert freq[3] == 0.0
    np.testing.assert_allclose(np.delete(freq, 3), np.full(C - 1, 1 / (C - 1)), atol=0.005)


def test_sym_true_with_two_classes_flips_every_picked_label():
    labels = np.random.default_rng(0).integers(0, 2, size=1000)
    noisy = sym_true(labels, 1.0, seed=0, num_classes=2)
    np.testing.assert_array_equal(noisy, 1 - labels)


def test_sym_true_is_seeded_and_differs_from_sym():
    labels = np.random.default_rng(8).integers(0, C, size=2000)
    np.testing.assert_array_equal(sym_true(labels, 0.5, 1), sym_true(labels, 0.5, 1))
    assert (sym_true(labels, 0.5, 1) != sym_true(labels, 0.5, 2)).sum() > 100
    assert (sym_true(labels, 0.5, 1) != sym(labels, 0.5, 1)).sum() > 100


def test_file_mode_draws_nothing():
    with pytest.raises(ValueError, match="noise.file"):
        inject_noise(np.zeros(10, dtype=np.int64), mode="file", rate=0.5, seed=0, num_classes=C, asym_map=None)


def test_noisy_label_file_sym_true_summary_is_exact(prepared, tmp_path):
    folder, truth = prepared
    summary = noisy_label_file(dataset="digits", prepared=folder, out=tmp_path / "l.parquet", mode="sym_true", rate=0.4, seed=3)
    assert summary["n_wrong"] == int(0.4 * len(truth)) and summary["noise_rate_actual"] == pytest.approx(0.4)
    assert summary["file"] is None and summary["key"] is None
