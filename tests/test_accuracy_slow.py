"""The default must show that the method works (slow: full runs; `make test-slow`)."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO, dvc, make_repo

pytestmark = pytest.mark.slow


def default_params(**overrides) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        section, name = key.split(".")
        params[section][name] = value
    return params


def run_metrics(tmp_path, **overrides) -> dict:
    root = make_repo(tmp_path / "project", default_params(**overrides))
    dvc(root, "repro")
    return json.loads((root / "metrics/eval.json").read_text())


def test_default_beats_the_baseline_and_divides_cleanly(tmp_path):
    m = run_metrics(tmp_path)
    assert m["test_acc_best"] >= 0.975
    assert m["test_acc_last"] >= m["ce_test_acc_last"] + 0.04  # plain training memorises the noise
    assert m["division_auc_last"] >= 0.99


def test_80_percent_symmetric_noise(tmp_path):
    assert run_metrics(tmp_path, **{"noise.rate": 0.8})["test_acc_best"] >= 0.95


def test_40_percent_asymmetric_noise(tmp_path):
    assert run_metrics(tmp_path, **{"noise.mode": "asym", "noise.rate": 0.4})["test_acc_best"] >= 0.96
