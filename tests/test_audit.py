"""The audit commands as a user runs them: `dividemix diff`, `trace` and `export`.

Small hand-built runs (a few samples, numbers checked by hand), a real tiny run, and a git + DVC
repository whose revisions and experiment are read without checking anything out.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dividemix.audit.diff import diff_runs
from dividemix.audit.export import EXPORT_SCHEMA
from dividemix.audit.measures import auc, jaccard
from dividemix.audit.sources import open_source
from dividemix.audit.trace import trace_samples
from dividemix.datasets.prepared import TRAIN_TRUTH
from dividemix.files import artifacts
from dividemix.judging.evaluation import RunArtifacts, division_quality
from dividemix.judging.relabel import DECISIONS, decide
from dividemix.judging.truth import truth_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------ helpers
def write_division(root: Path, epoch: int, nets: dict[int, tuple[list, list]], noisy: list[int],
                   *, dataset: str = "digits") -> None:
    """One epoch file: nets maps net -> (labeled, clean_prob), one value per sample."""
    n = len(noisy)
    columns: dict[str, list] = {name: [] for name in artifacts.DIVISIONS.names}
    for net, (labeled, prob) in nets.items():
        columns["epoch"] += [epoch] * n
        columns["net"] += [net] * n
        columns["sample_index"] += list(range(n))
        columns["noisy_label"] += list(noisy)
        columns["loss"] += [1.0 - p for p in prob]
        columns["loss_norm"] += [(1.0 - p) / 2 for p in prob]
        columns["clean_prob"] += list(prob)
        columns["labeled"] += list(labeled)
    meta = {"params": {"data.dataset": dataset, "train.p_threshold": 0.5}}
    artifacts.write_table(artifacts.epoch_file(root / "artifacts/divisions", epoch), "divisions", columns, meta)


def write_truth(root: Path, truth: list[int], noisy: list[int]) -> None:
    (root / "data/prepared").mkdir(parents=True, exist_ok=True)
    np.save(root / "data/prepared" / TRAIN_TRUTH, np.asarray(truth, dtype=np.int64))
    artifacts.write_table(root / "data/noisy/labels.parquet", "noisy_labels",
                          {"sample_index": list(range(len(noisy))), "noisy_label": noisy})


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`dividemix ARGS` in a child process, as a user types it."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "dividemix_cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# Six samples; noisy labels of classes 0 and 1; the truth makes samples 2 and 5 wrong.
NOISY = [0, 0, 0, 1, 1, 1]
TRUTH = [0, 0, 1, 1, 1, 0]  # clean mask: T T F T T F
A_NET1 = ([True, True, True, False, False, False], [0.9, 0.8, 0.7, 0.4, 0.2, 0.1])
B_NET1 = ([True, True, False, True, False, False], [0.9, 0.6, 0.3, 0.8, 0.2, 0.1])
A_NET2 = ([True, True, True, True, True, True], [0.9] * 6)
B_NET2 = ([False] * 6, [0.1] * 6)


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Run A has epochs 2, 3, 4; run B epochs 2 and 3 (a shorter run); the truth is known to both."""
    a, b = tmp_path / "a", tmp_path / "b"
    for epoch in (2, 3, 4):
        write_division(a, epoch, {1: A_NET1, 2: A_NET2}, NOISY)
    for epoch in (2, 3):
        write_division(b, epoch, {1: B_NET1, 2: B_NET2}, NOISY)
    for root in (a, b):
        write_truth(root, TRUTH, NOISY)
    return a, b


# ------------------------------------------------------------------------------- measures
def test_auc_matches_sklearn_with_ties_and_is_nan_when_undefined():
    rng = np.random.default_rng(0)
    positive = rng.random(500) < 0.4
    score = rng.integers(0, 7, 500).astype(np.float32)  # many ties
    assert auc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
    # by hand: positives {0.9, 0.5}, negatives {0.5, 0.1}: pairs won 1 + 1 + 0.5 (tie) + 1 = 3.5 of 4
    assert auc(np.array([True, True, False, False]), np.array([0.9, 0.5, 0.5, 0.1])) == 3.5 / 4
    assert math.isnan(auc(np.ones(3, bool), np.arange(3.0)))


def test_jaccard_by_hand_and_of_two_empty_sets():
    a = np.array(A_NET1[0])
    b = np.array(B_NET1[0])
    assert jaccard(a, b) == 2 / 4  # {0,1} of {0,1,2,3}
    assert jaccard(np.zeros(3, bool), np.zeros(3, bool)) == 1.0  # equal (empty) sets


def test_diff_by_hand(two_runs):
    a, b = (open_source(str(p)) for p in two_runs)
    result = diff_runs(a, b)
    assert result.compared == [2, 3]
    assert any("compared on the 2 common epochs 2-3" in note for note in result.notes)
    net1 = result.summary[(result.summary["epoch"] == 2) & (result.summary["net"] == 1)].iloc[0]
    assert (net1["n_labeled_a"], net1["n_labeled_b"]) == (3, 3)
    assert net1["jaccard"] == 0.5
    assert (net1["to_unlabeled"], net1["to_labeled"]) == (1, 1)  # sample 2 out, sample 3 in
    shifts = np.array(B_NET1[1]) - np.array(A_NET1[1])  # 0, -0.2, -0.4, +0.4, 0, 0
    assert net1["prob_shift"] == pytest.approx(shifts.mean(), abs=1e-6)
    assert net1["prob_shift_abs"] == pytest.approx(1.0 / 6, abs=1e-6)
    # clean mask T T F T T F: A labels {0,1,2}: precision 2/3, recall 2/4; B labels {0,1,3}: 3/3, 3/4
    assert net1["precision_a"] == pytest.approx(2 / 3) and net1["recall_a"] == 0.5
    assert net1["precision_b"] == 1.0 and net1["recall_b"] == 0.75
    # AUC of A: clean scores {.9,.8,.4,.2} against noisy {.7,.1}: .9 and .8 beat both, .4 and .2 beat .1 only
    assert net1["auc_a"] == pytest.approx((2 + 2 + 1 + 1) / 8)
    net2 = result.summary[(result.summary["epoch"] == 3) & (result.summary["net"] == 2)].iloc[0]
    assert (net2["n_labeled_a"], net2["n_labeled_b"], net2["jaccard"]) == (6, 0, 0.0)
    assert (net2["to_unlabeled"], net2["to_labeled"]) == (6, 0)
    assert net2["auc_a"] == 0.5  # one score for all: every pair a tie
    assert math.isnan(net2["precision_b"])  # an empty labeled set has no precision


def test_diff_by_class_counts_within_each_noisy_class(two_runs):
    a, b = (open_source(str(p)) for p in two_runs)
    by_class = diff_runs(a, b, by_class=True, epochs=[2]).by_class
    rows = by_class[by_class["net"] == 1].set_index("class")
    # class 0 = samples 0,1,2: A {0,1,2}, B {0,1}; class 1 = samples 3,4,5: A {}, B {3}
    assert rows.loc[0, ["n", "n_labeled_a", "n_labeled_b", "to_unlabeled", "to_labeled"]].tolist() == [3, 3, 2, 1, 0]
    assert rows.loc[0, "jaccard"] == pytest.approx(2 / 3)
    assert rows.loc[1, ["n_labeled_a", "n_labeled_b", "to_unlabeled", "to_labeled"]].tolist() == [0, 1, 0, 1]
    assert rows.loc[1, "jaccard"] == 0.0
    assert rows.loc[0, "precision_a"] == pytest.approx(2 / 3) and math.isnan(rows.loc[1, "precision_a"])


# ------------------------------------------------------------------------------------ the CLI
def test_cli_diff_prints_the_table_and_writes_per_sample_rows_and_a_page(two_runs, tmp_path):
    a, b = two_runs
    out, page = tmp_path / "diff.parquet", tmp_path / "diff.html"
    result = cli("diff", str(a), str(b), "--by-class", "--out", str(out), "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert "compared on the 2 common epochs 2-3" in result.stdout
    assert "jaccard" in result.stdout and "per class" in result.stdout
    rows = pd.read_parquet(out)
    assert list(rows.columns) == ["epoch", "net", "sample_index", "labeled_a", "labeled_b", "clean_prob_a",
                                  "clean_prob_b", "moved"]
    assert len(rows) == 2 * 2 * 6  # common epochs x nets x samples
    first = rows[(rows["epoch"] == 2) & (rows["net"] == 1)]
    assert first["moved"].astype(str).tolist() == ["none", "none", "to_unlabeled", "to_labeled", "none", "none"]
    assert first["clean_prob_b"].tolist() == pytest.approx(B_NET1[1])
    html = page.read_text()
    assert html.count('<img src="data:image/png;base64,') >= 4 and "http" not in html


def test_cli_diff_refuses_runs_on_different_data(two_runs, tmp_path):
    a, _ = two_runs
    other = tmp_path / "other"
    write_division(other, 2, {1: ([True] * 4, [0.9] * 4), 2: ([True] * 4, [0.9] * 4)}, [0, 1, 0, 1])
    assert_one_line_error(cli("diff", str(a), str(other)), "different data", "6 training samples", "has 4")
    cifar = tmp_path / "cifar"
    write_division(cifar, 2, {1: A_NET1, 2: A_NET2}, NOISY, dataset="cifar10")
    assert_one_line_error(cli("diff", str(a), str(cifar)), "different data", "'digits'", "'cifar10'")


def test_cli_diff_errors_are_one_line(two_runs, tmp_path):
    a, _ = two_runs
    late = tmp_path / "late"
    write_division(late, 9, {1: A_NET1, 2: A_NET2}, NOISY)
    assert_one_line_error(cli("diff", str(a), str(late)), "no common epoch", "2-4", "9")
    assert_one_line_error(cli("diff", str(a), "no-such-run", "--repo", str(tmp_path)),
                          "no-such-run", "not a git revision or DVC experiment")
    assert_one_line_error(cli("diff", str(a), str(a), "--epochs", "7"), "--epochs", "7")


def test_the_artifacts_folder_itself_is_a_source(two_runs):
    a, b = two_runs
    result = cli("diff", str(a / "artifacts"), str(b / "artifacts"))
    assert result.returncode == 0, result.stderr
    assert "precision_a" in result.stdout  # data/ beside artifacts/ is found


def test_cli_trace_prints_each_epoch_and_plots(two_runs, tmp_path):
    a, _ = two_runs
    plot = tmp_path / "trace.png"
    result = cli("trace", "2", "--source", str(a), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert "sample 2: noisy label 0; true label 1 (wrong)" in result.stdout
    assert "division epochs 2-4" in result.stdout
    lines = [line.split() for line in result.stdout.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert len(lines) == 6  # 2 nets x 3 epochs
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    frame = trace_samples(open_source(str(a)), [2])
    assert frame[frame["net"] == 1]["clean_prob"].tolist() == pytest.approx([0.7] * 3)
    assert frame["labeled"].tolist() == [True] * 6


def test_cli_trace_unknown_sample_names_the_allowed_range(two_runs):
    a, _ = two_runs
    assert_one_line_error(cli("trace", "6", "--source", str(a)), "sample 6", "allowed: 0..5")


# ------------------------------------------------------------------------------------- export
def test_decision_rule_by_hand():
    noisy = np.array([0, 0, 0, 0, 0, 0])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    confidence = np.array([0.9, 0.9, 0.4, 0.9, 0.9, 0.9])
    clean_prob = np.array([0.8, 0.2, 0.2, 0.8, 0.2, 0.5])
    codes, cleaned = decide(noisy, predicted, confidence, clean_prob, 0.5)
    assert [DECISIONS[c] for c in codes] == [
        "kept",  # trusted and confirmed
        "relabelled",  # rejected, confidently another class
        "distrusted",  # rejected, another class but not confident
        "distrusted",  # trusted but contradicted
        "distrusted",  # rejected but confirmed
        "distrusted",  # 0.5 is not > 0.5 (the threshold is strict, as the division's)
    ]
    assert cleaned.tolist() == [0, 1, -1, -1, -1, -1]


def test_export_of_a_real_run_without_the_truth(tiny_run: Path, tmp_path: Path):
    """Export reads the final division and the trained networks, never the true labels."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "data", run / "data")
    shutil.copytree(tiny_run / "artifacts/divisions", run / "artifacts/divisions")
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    (run / "data/prepared" / TRAIN_TRUTH).unlink()
    result = cli("export", "--source", str(run), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "out/cleaned_labels.parquet")
    csv = pd.read_csv(tmp_path / "out/cleaned_labels.csv")
    assert len(frame) == len(csv) == 1437
    assert list(frame.columns) == EXPORT_SCHEMA.names
    final = artifacts.read_table(run / "artifacts/divisions/epoch_003.parquet", "divisions")
    net1 = final[final["net"] == 1]["clean_prob"].to_numpy()
    assert frame["clean_prob_net1"].to_numpy() == pytest.approx(net1)
    net2 = final[final["net"] == 2]["clean_prob"].to_numpy()
    assert frame["clean_prob"].to_numpy() == pytest.approx((net1 + net2) / 2)
    kept, relabelled = frame[frame["decision"] == "kept"], frame[frame["decision"] == "relabelled"]
    assert (kept["cleaned_label"] == kept["noisy_label"]).all() and (kept["clean_prob"] > 0.5).all()
    assert (relabelled["cleaned_label"] == relabelled["predicted_label"]).all()
    assert (relabelled["predicted_label"] != relabelled["noisy_label"]).all() and (relabelled["confidence"] > 0.5).all()
    assert frame[frame["decision"] == "distrusted"]["cleaned_label"].isna().all()
    assert len(kept) > 300 and len(relabelled) > 50  # a 4-epoch run already separates many
    # judged against the truth afterwards: the cleaned labels are mostly right, far more than the noisy ones
    truth = np.load(tiny_run / "data/prepared" / TRAIN_TRUTH)
    cleaned = frame.dropna(subset=["cleaned_label"])
    right = (cleaned["cleaned_label"].to_numpy() == truth[cleaned["sample_index"].to_numpy()]).mean()
    assert right > 0.8 > (frame["noisy_label"].to_numpy() == truth).mean()
    assert "kept" in result.stdout and "wrote" in result.stdout
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind


def test_export_to_a_csv_file_and_bad_suffix(tiny_run: Path, tmp_path: Path):
    out = tmp_path / "labels.csv"
    result = cli("export", "--source", str(tiny_run), "--out", str(out), "--device", "cpu", "--threshold", "0.9")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert (frame.loc[frame["decision"] == "kept", "clean_prob"] > 0.9).all()
    assert "threshold 0.9" in result.stdout
    assert_one_line_error(cli("export", "--source", str(tiny_run), "--out", str(tmp_path / "x.txt")), "x.txt")


def test_export_without_trained_networks_is_one_line(two_runs, tmp_path):
    a, _ = two_runs
    assert_one_line_error(cli("export", "--source", str(a), "--out", str(tmp_path / "o.csv")),
                          "checkpoints/train/last.pt", "train stage")


# ------------------------------------------------------------------- real runs, revisions, experiments
def git_env(root: Path) -> dict:
    return dict(
        os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DVC_SITE_CACHE_DIR=str(root / ".dvc-site"),
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
    )


def run_in(root: Path, *command: str) -> None:
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, env=git_env(root))
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"


def flip_labeled(division_file: Path, net: int, samples: list[int]) -> tuple[int, int]:
    """Flip `labeled` (and mirror clean_prob) of `samples` for `net`; returns (to_unlabeled, to_labeled)."""
    frame = artifacts.read_table(division_file, "divisions")
    rows = (frame["net"] == net) & frame["sample_index"].isin(samples)
    was = frame.loc[rows, "labeled"]
    frame.loc[rows, "labeled"] = ~was
    frame.loc[rows, "clean_prob"] = 1.0 - frame.loc[rows, "clean_prob"]
    meta = artifacts.read_meta(division_file)
    artifacts.write_table(division_file, "divisions", {c: frame[c].to_numpy() for c in frame.columns}, meta)
    return int(was.sum()), int((~was).sum())


@pytest.fixture(scope="module")
def dvc_repo(tiny_run: Path, tmp_path_factory) -> tuple[Path, dict]:
    """A git + DVC repository of the tiny run: commit 1 the run, commit 2 with 10 flips, an experiment with 20."""
    root = tmp_path_factory.mktemp("audit_repo") / "project"
    root.mkdir()
    shutil.copytree(tiny_run / "data", root / "data")
    shutil.copytree(tiny_run / "artifacts/divisions", root / "artifacts/divisions")
    run_in(root, "git", "init", "-q")
    run_in(root, "dvc", "init", "-q")
    run_in(root, "dvc", "add", "-q", "artifacts/divisions", "data/prepared", "data/noisy")
    run_in(root, "git", "add", "-A")
    run_in(root, "git", "commit", "-qm", "tiny run")
    moved = {"commit": flip_labeled(root / "artifacts/divisions/epoch_003.parquet", 1, list(range(10)))}
    run_in(root, "dvc", "add", "-q", "artifacts/divisions")
    run_in(root, "git", "commit", "-qam", "ten samples flipped")
    moved["exp"] = flip_labeled(root / "artifacts/divisions/epoch_002.parquet", 2, list(range(100, 120)))
    run_in(root, "dvc", "exp", "save", "-q", "-n", "flipped-exp")
    return root, moved


def test_diff_of_two_git_revisions_reads_them_from_the_dvc_cache(dvc_repo, tmp_path):
    root, moved = dvc_repo
    out = tmp_path / "rows.parquet"
    result = cli("diff", "HEAD~1", "HEAD", "--out", str(out), cwd=root)
    assert result.returncode == 0, result.stderr
    rows = pd.read_parquet(out)
    changed = rows[rows["moved"].astype(str) != "none"]
    assert sorted(changed["sample_index"]) == list(range(10))
    assert set(changed["epoch"]) == {3} and set(changed["net"]) == {1}
    summary = diff_runs(open_source("HEAD~1", repo=root), open_source("HEAD", repo=root)).summary
    row = summary[(summary["epoch"] == 3) & (summary["net"] == 1)].iloc[0]
    assert (row["to_unlabeled"], row["to_labeled"]) == moved["commit"]
    assert summary.drop(index=row.name)[["to_unlabeled", "to_labeled"]].to_numpy().sum() == 0
    assert not math.isnan(row["auc_a"])  # the truth was read from the revision too
    assert "HEAD~1" in result.stdout


def test_diff_against_a_dvc_experiment(dvc_repo):
    root, moved = dvc_repo
    result = diff_runs(open_source("HEAD", repo=root), open_source("flipped-exp", repo=root))
    row = result.summary[(result.summary["epoch"] == 2) & (result.summary["net"] == 2)].iloc[0]
    assert (row["to_unlabeled"], row["to_labeled"]) == moved["exp"]
    assert result.summary[["to_unlabeled", "to_labeled"]].to_numpy().sum() == sum(moved["exp"])
    trace = cli("trace", "100", "--rev", "flipped-exp", "--repo", str(root))
    assert trace.returncode == 0, trace.stderr
    assert "sample 100" in trace.stdout


def test_diff_of_a_real_run_with_itself_is_all_agreement(tiny_run: Path):
    run = open_source(str(tiny_run))
    summary = diff_runs(run, run).summary
    assert (summary["jaccard"] == 1.0).all() and (summary["to_labeled"] + summary["to_unlabeled"] == 0).all()
    assert list(summary["epoch"].unique()) == [2, 3]
    assert (summary["n_labeled_a"] > 0).all()
    # the same precision and AUC as evaluation (sklearn's roc_auc_score)
    quality = division_quality(RunArtifacts(tiny_run / "artifacts"),
                               truth_of(tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet"))
    merged = summary.merge(quality, on=["epoch", "net"])
    assert merged["auc_a"].to_numpy() == pytest.approx(merged["auc"].to_numpy(), abs=1e-12)
    assert merged["precision_a"].to_numpy() == pytest.approx(merged["precision"].to_numpy())


def test_dividemix_help_lists_the_audit_commands():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("diff", "trace", "export"):
        assert command in result.stdout


# ------------------------------------------------------------------------- what goes wrong
def test_a_fresh_clone_without_the_dvc_cache_is_one_line_saying_to_pull(dvc_repo, tmp_path):
    root, _ = dvc_repo
    clone = tmp_path / "clone"
    run_in(tmp_path, "git", "clone", "-q", str(root), str(clone))  # git only: no DVC cache, no remote
    result = cli("diff", "HEAD~1", "HEAD", cwd=clone)
    assert_one_line_error(result, "HEAD~1", "artifacts/divisions", "dvc pull", "dvc exp pull")
    assert "Traceback" not in result.stderr


def test_a_corrupt_parquet_file_is_named(tiny_run: Path, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "artifacts", run / "artifacts")
    broken = run / "artifacts/divisions/epoch_003.parquet"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated
    for args in (("diff", str(run), str(tiny_run)), ("trace", "3", "--source", str(run))):
        assert_one_line_error(cli(*args), str(broken), "not a readable Parquet file", "dvc checkout")
    with pytest.raises(artifacts.ArtifactError, match="epoch_003.parquet: not a readable Parquet file"):
        artifacts.read_table(run / "artifacts/divisions", "divisions")


def test_an_unfinished_run_says_so_in_diff_trace_and_export(tiny_run: Path, tmp_path):
    """A run stopped after epoch 2 of 0..3: each command warns, naming its last epoch and the planned total."""
    run = tmp_path / "stopped"
    shutil.copytree(tiny_run, run)
    for folder in ("divisions", "mixtures", "losses", "epochs"):
        (run / "artifacts" / folder / "epoch_003.parquet").unlink()
    import torch

    state = torch.load(run / "checkpoints/train/last.pt", weights_only=True)
    state["epoch"] = 2  # as the checkpoint of a run stopped there would say
    torch.save(state, run / "checkpoints/train/last.pt")
    warning = f"warning: {run} is not finished: its last epoch is 2 of 3 (train.epochs 4); `dvc repro` resumes it"
    for args in (("diff", str(run), str(tiny_run)), ("trace", "3", "--source", str(run)),
                 ("export", "--source", str(run), "--out", str(tmp_path / "labels.csv"), "--device", "cpu")):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        assert warning in result.stderr.splitlines(), (args, result.stderr)
    finished = cli("trace", "3", "--source", str(tiny_run))
    assert "warning" not in finished.stderr  # the control: a finished run warns of nothing
