"""The opt-in switches beyond the paper: train.selection (method.selection: gmm, uniform_jsd), the
division files' record of a rule, the presets of the published cells, the switches' refusals and both
switches under several processes (train.augment's views: tests/test_views.py).

UNICON's rule is checked against a hand-computed example (shared/reference/selection.md, section 1).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import tiny_params
from dividemix.config import ConfigError, parse_config
from dividemix.files import artifacts
from dividemix.images.views import views_for
from dividemix.method.codivide import LossHistory
from dividemix.method.selection import SelectionInputs, select, uniform_jsd
from dividemix.training import rows
from dividemix.training.train import divide_for
from steps import division, nets_for

LN2 = math.log(2)

# The hand-computed example: 3 classes, 8 samples; p is each sample's prediction, y its given label.
#   p = onehot(y)                    -> d = 0
#   p = (0.5, 0.5, 0), y = 0          -> m = (.75, .25, 0): d = .5(.5 ln(.5/.75) + .5 ln 2) + .5 ln(4/3) = 0.215762
#   p = (0.8, 0.2, 0), y = 0          -> m = (.9, .1, 0):  d = .5(.8 ln(.8/.9) + .2 ln 2) + .5 ln(10/9) = 0.074882
#   p = onehot(other class)          -> m = (.5, .5, 0):  d = ln 2
PROBS = [(1, 0, 0), (.5, .5, 0), (0, 1, 0), (.8, .2, 0), (0, 1, 0), (0, 1, 0), (1, 0, 0), (.2, .8, 0)]
LABELS = [0, 0, 0, 0, 1, 2, 0, 1]
D = [0.0, 0.215762, LN2, 0.074882, 0.0, LN2, 0.0, 0.074882]
# mean(d) = 0.218978: six samples below it (the 0.215762 one just), SR = 6/8, quota = floor(0.75 * 8 / 3) = 2.
# Class 0 takes its two zeros (samples 0 and 6), class 1 both of its samples (4, 7), class 2 has one
# sample, fewer than the quota: it is taken although its d is the largest (UNICON's rule).
LABELED = [0, 4, 5, 6, 7]


def example_inputs(**changes) -> SelectionInputs:
    p = torch.tensor(PROBS, dtype=torch.float64)
    logits = torch.where(p > 0, torch.log(p.clamp_min(1e-300)), torch.tensor(-1e4, dtype=torch.float64)).float()
    base = SelectionInputs(logits=logits, labels=torch.tensor(LABELS), num_classes=3, history=LossHistory(1),
                           p_threshold=0.5, seed=0)
    return dataclasses.replace(base, **changes)


def test_uniform_jsd_matches_the_hand_computed_example():
    d = select("uniform_jsd", example_inputs())
    np.testing.assert_allclose(d.loss_norm, D, atol=1e-6)  # the divergence (natural log), the rule's input
    assert d.record["cut"] == pytest.approx(sum(D) / 8, abs=1e-6)
    assert d.record["selection_ratio"] == 0.75 and d.record["quota"] == 2
    assert d.record["taken"] == [2, 2, 1] and d.record["class_sizes"] == [5, 2, 1]
    assert np.flatnonzero(d.labeled).tolist() == LABELED
    np.testing.assert_allclose(d.clean_prob, [1, 1, 1 - LN2, 1, 1, 1 - LN2, 1, 1], atol=1e-6)  # w
    assert d.mixture is None and d.record["rule"] == "uniform_jsd" and not d.record["ensemble"]


def test_uniform_jsd_cut_filter_and_weights_follow_the_released_code():
    # the filter of L402-406, dead with the natural log, live for a mean above d_u = 0.7
    assert uniform_jsd.cut_of(np.array([0.9, 0.8])) == pytest.approx(0.85 - (0.85 - 0.8) / 5)
    assert uniform_jsd.cut_of(np.array([0.2, 0.4])) == pytest.approx(0.3)
    np.testing.assert_allclose(uniform_jsd.weights(np.array([0.1, 0.4999, 0.5, 0.6])), [1, 1, 0.5, 0.4])


def test_uniform_jsd_ensemble_averages_both_networks_predictions():
    peer = torch.zeros(8, 3)  # a uniform prediction: p = (onehot + 1/3) / 2 for the one-hot rows
    d = select("uniform_jsd", example_inputs(peer_logits=peer))
    alone = select("uniform_jsd", example_inputs())
    assert d.record["ensemble"] and not np.allclose(d.loss_norm, alone.loss_norm)
    p = (np.array(PROBS) + 1 / 3) / 2
    np.testing.assert_allclose(d.loss_norm, uniform_jsd.jsd(torch.tensor(p), torch.tensor(LABELS)), atol=1e-6)


def test_an_unknown_rule_or_policy_is_refused_in_one_line():
    with pytest.raises(ValueError, match="allowed: gmm, uniform_jsd"):
        select("css", example_inputs())
    with pytest.raises(ValueError, match="allowed: paper, weak_strong"):
        views_for("strong", "randaugment")


@pytest.mark.parametrize("rule", ["gmm", "uniform_jsd"])
def test_each_rule_divides_by_each_networks_own_predictions(small_ws, rule):
    """Co-divide is kept: each network's division comes from its own eval pass (the loop gives it
    to the peer); the ensemble option gives both networks one division."""
    ws = dataclasses.replace(small_ws, config=parse_config(tiny_params(**{"train.selection": rule})))
    net1, net2, _ = nets_for(ws)
    d1 = divide_for(net1, ws, LossHistory(1), 2, 1, net2)
    d2 = divide_for(net2, ws, LossHistory(1), 2, 2, net1)
    assert not np.array_equal(d1.loss, d2.loss)  # two networks, two eval passes
    assert (d1.record is None) == (rule == "gmm")
    if rule == "uniform_jsd":
        own = select(rule, SelectionInputs(ws.logits(net1, ws.train_images), ws.noisy_labels, 10, LossHistory(1), 0.5, 0))
        assert np.array_equal(d1.labeled, own.labeled)
        both = dataclasses.replace(ws, config=parse_config(tiny_params(**{"train.selection": rule,
                                                                          "train.selection_ensemble": True})))
        e1 = divide_for(net1, both, LossHistory(1), 2, 1, net2)
        e2 = divide_for(net2, both, LossHistory(1), 2, 2, net1)
        np.testing.assert_allclose(e1.loss_norm, e2.loss_norm, atol=1e-6)
        assert not np.allclose(e1.loss_norm, d1.loss_norm)


def test_the_division_file_records_the_rule_and_a_gmm_file_stays_as_it_was(tmp_path):
    noisy = np.array(LABELS)
    jsd_d = select("uniform_jsd", example_inputs())
    gmm_d = division(np.array([True, False] * 4))
    assert rows.selection_notes({1: gmm_d, 2: gmm_d}) == {}
    path = tmp_path / "epoch_002.parquet"
    divisions = {1: jsd_d, 2: jsd_d}
    artifacts.write_table(path, "divisions", rows.division_rows(2, divisions, noisy),
                          {"params": {}} | rows.selection_notes(divisions))
    record = artifacts.read_meta(path)["selection"]["1"]
    assert record["rule"] == "uniform_jsd" and record["quota"] == 2 and record["taken"] == [2, 2, 1]
    assert record["cut"] == pytest.approx(sum(D) / 8, abs=1e-6)
    table = artifacts.read_table(path, "divisions")  # the schema itself is unchanged: v1 readers read it
    np.testing.assert_allclose(table["loss_norm"][:8], D, atol=1e-6)
    assert rows.mixture_rows(2, divisions)["epoch"] == []  # no mixture to write


def test_trace_shows_the_rule_cut_and_the_samples_class_quota():
    import pandas as pd

    from dividemix.audit.trace import with_rule

    frame = pd.DataFrame({"epoch": [2, 2], "net": [1, 2], "noisy_label": [2, 0]})
    record = {"rule": "uniform_jsd", "cut": 0.2, "quota": 2, "taken": [2, 2, 1]}
    out = with_rule(frame, {2: {"selection": {"1": record}}})
    assert out["rule"].tolist() == ["uniform_jsd", "gmm"] and out["quota"].tolist()[0] == 1
    assert out["cut"].tolist()[0] == 0.2


def test_diff_shows_each_sides_rule_only_when_one_is_not_the_gmm():
    from dividemix.audit.diff import rule_columns
    from dividemix.audit.epochs import EpochDivision

    def side(selection):
        return EpochDivision(2, {1: np.zeros(3)}, {1: np.zeros(3, bool)}, np.zeros(3, int), {}, selection)

    gmm = side({1: {"rule": "gmm"}})
    jsd = side({1: {"rule": "uniform_jsd", "cut": 0.3, "selection_ratio": 0.5, "quota": 7}})
    assert rule_columns(gmm, side(None), 1) == {}  # a GMM run's summary keeps its columns
    columns = rule_columns(gmm, jsd, 1)
    assert (columns["rule_a"], columns["rule_b"], columns["cut_b"], columns["quota_b"]) == ("gmm", "uniform_jsd", 0.3, 7)


def with_params(ws, **overrides):
    return dataclasses.replace(ws, config=parse_config(tiny_params(**overrides)))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"train.selection": "unicon"}, "train.selection: Input should be 'gmm' or 'uniform_jsd'"),
    ({"train.augment": "strong"}, "train.augment: Input should be 'paper' or 'weak_strong'"),
    ({"train.strong_policy": "autoaugment"}, "train.strong_policy: Input should be"),
    ({"train.selection_ensemble": True}, "train.selection_ensemble: read by train.selection 'uniform_jsd' only"),
    ({"train.selection": "uniform_jsd", "train.loss_history": 5}, "train.loss_history: train.selection 'uniform_jsd'"),
    ({"train.augment": "weak_strong", "ablation.augmentation": False}, "train.augment: 'weak_strong' needs"),
])
def test_bad_switch_values_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as info:
        parse_config(tiny_params(**overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


# --- presets of the published cells ----------------------------------------------------------


@pytest.mark.parametrize(("name", "best", "last"), [
    ("cifar10-sym80-augdesc-ws", 93.77, 93.64), ("cifar10-sym90-augdesc-ws", 91.88, 91.76),
    ("cifar100-sym80-augdesc-ws", 66.36, 66.05), ("cifar100-sym90-augdesc-ws", 41.20, 40.90),
    ("cifar10-sym80-unicon", 93.9, None), ("cifar10-sym90-unicon", 90.8, None),
    ("cifar100-sym80-unicon", 63.9, None), ("cifar100-sym90-unicon", 44.8, None),
])
def test_a_switched_run_is_its_methods_cell_and_a_plain_run_the_papers(name, best, last):
    import yaml

    from conftest import REPO
    from dividemix.paper.presets import find_preset, get_preset, preset_config, preset_differences

    preset = get_preset(name)
    assert (preset.paper_best, preset.paper_last) == (best, last)
    config = preset_config(yaml.safe_load((REPO / "params.yaml").read_text()), name)
    assert find_preset(config).name == name and preset_differences(config, name) == []
    paper_cell = name.rsplit("-", 2 if name.endswith("augdesc-ws") else 1)[0]
    plain = preset_config(yaml.safe_load((REPO / "params.yaml").read_text()), paper_cell)
    assert find_preset(plain).name == paper_cell  # the switches off: DivideMix's own cell, as before
    # the paper's cell lists a switch it did not run as a departure
    assert ("train.augment", "weak_strong", "paper") in preset_differences(config, paper_cell)
    assert (preset.paper_network is not None) == name.endswith("unicon")  # UNICON's figure: its whole method


# --- under several processes -----------------------------------------------------------------

SWITCHED = {"train.selection": "uniform_jsd", "train.selection_ensemble": True, "train.augment": "weak_strong",
            "train.strong_policy": "trivialaugment_wide"}
SPREAD_PROBE = '''
import numpy as np
from dividemix.method.codivide import LossHistory
from dividemix.run.stage import run_stage
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import make_optimizer
from dividemix.training.train import divide_for
from dividemix.training.workspace import Workspace

def body(config, params, paths):
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    nets = {i: ws.new_net(i) for i in (1, 2)}
    division = divide_for(nets[1], ws, LossHistory(1), 2, 1, nets[2])
    trainer = ws.cluster.data_parallel(nets[1])  # each process computes the views of its share
    rows = dividemix_epoch(trainer, nets[2], make_optimizer(nets[1], config.train), ws, division, 2, 1)
    if ws.cluster.is_writer:
        np.savez(paths.prepared.parent / "probe.npz", labeled=division.labeled, w=division.clean_prob,
                 steps=len(rows["step"]), world=ws.cluster.world)

run_stage("probe", [], ["prepared", "noisy"], body, spreads=True)
'''


@pytest.mark.stage
def test_two_processes_select_as_one_and_train_on_their_shares_views(digits_data, tmp_path):
    """uniform_jsd under two processes: the writer's division is everyone's and equals one
    process's; a weak_strong epoch runs over the two processes' shares (each its own views)."""
    import subprocess
    import sys

    from conftest import digits_run, write_params
    from dividemix.training.workspace import Workspace

    root = digits_run(digits_data, tmp_path / "run")
    write_params(root / "params.yaml", tiny_params(**SWITCHED, **{"distributed.processes_per_machine": 2,
                                                                  "distributed.timeout_s": 120}))
    (root / "probe.py").write_text(SPREAD_PROBE)
    result = subprocess.run([sys.executable, "probe.py", "--prepared", "data/prepared", "--noisy",
                             "data/noisy/labels.parquet"], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    spread = np.load(root / "data/probe.npz")
    assert int(spread["world"]) == 2 and int(spread["steps"]) > 0
    ws = Workspace.load(parse_config(tiny_params(**SWITCHED)), root / "data/prepared", root / "data/noisy/labels.parquet")
    alone = divide_for(ws.new_net(1), ws, LossHistory(1), 2, 1, ws.new_net(2))
    assert (spread["labeled"] != alone.labeled).sum() <= 2  # (a divergence within rounding of the cut)
    np.testing.assert_allclose(spread["w"], alone.clean_prob, atol=1e-5)


