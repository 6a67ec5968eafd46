"""The pipeline as a user drives it: `dvc repro` in a fresh repository, caching, resume, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_PARAMS, dvc, make_repo, stages_run, tiny_params, write_params
from dividemix.files import artifacts
from dividemix.judging.evaluation import RunArtifacts, accuracy_curves, division_quality, summary_metrics
from dividemix.judging.gallery import build_gallery
from dividemix.judging.truth import truth_of

pytestmark = pytest.mark.stage  # runs stages, DVC or Prefect: not in the fast tier

ARTIFACT_SETS = ["divisions", "mixtures", "losses", "epochs"]


def read_artifacts(root: Path, *, train_only: bool = False) -> dict[str, pd.DataFrame]:
    """Every artifact of a run (the train stage's only, with `train_only`), as frames."""
    tables = {name: artifacts.read_table(root / "artifacts" / name, name) for name in ARTIFACT_SETS}
    if not train_only:
        tables["warmup_epochs"] = artifacts.read_table(root / "artifacts/warmup/epochs.parquet", "epochs")
        tables["baseline"] = artifacts.read_table(root / "artifacts/baseline/epochs.parquet", "baseline_epochs")
    return tables


def assert_same_artifacts(a: Path, b: Path, *, train_only: bool = False) -> None:
    left, right = read_artifacts(a, train_only=train_only), read_artifacts(b, train_only=train_only)
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def repro_repo(tmp_path_factory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("repo") / "project", TINY_PARAMS)
    result = dvc(root, "repro")
    assert stages_run(result.stdout) == {"check", "download", "noise", "warmup", "baseline", "train", "evaluate", "report"}
    return root


def test_repro_writes_every_artifact_with_its_schema(repro_repo: Path):
    division = pd.read_parquet(repro_repo / "artifacts/divisions")  # readable whole, as documented
    assert list(division.columns) == artifacts.DIVISIONS.names
    n_train = 1437
    epochs = TINY_PARAMS["train"]["epochs"] - TINY_PARAMS["train"]["warmup_epochs"]
    assert len(division) == epochs * 2 * n_train
    assert set(division["net"]) == {1, 2}
    losses = pd.read_parquet(repro_repo / "artifacts/losses")
    assert list(losses.columns) == artifacts.LOSSES.names
    assert (losses["n_labeled"] + losses["n_unlabeled"] == n_train).all()
    metrics = json.loads((repro_repo / "metrics/eval.json").read_text())
    assert set(metrics) == {
        "test_acc_last10", "test_acc_last10_from_epoch", "test_acc_best", "test_acc_last", "ce_test_acc_best",
        "ce_test_acc_last", "division_auc_last", "division_precision_last", "division_recall_last",
        "noise_rate_actual", "test_acc_best_val", "truth", "division_truth_n_last", "export_relabel_accuracy",
        "export_relabelled_n", "export_cleaned_accuracy", "export_cleaned_n",
        *(f"{figure}_{which}" for figure in ("test_top5", "test2_acc", "test2_top5") for which in ("last10", "last", "best")),
    }
    n_train = len(artifacts.read_table(repro_repo / "data/noisy/labels.parquet", "noisy_labels"))
    assert metrics.pop("truth") == "full" and metrics.pop("division_truth_n_last") == n_train  # every label known
    assert 0 < metrics.pop("export_cleaned_n") <= n_train and metrics.pop("export_relabelled_n") >= 0
    relabelled = metrics.pop("export_relabel_accuracy")
    assert relabelled is None or 0.0 <= relabelled <= 1.0
    assert metrics.pop("test_acc_best_val") is None  # digits has no validation set
    for which in ("last10", "last", "best"):  # ... and no second test set; 10 classes: top-5 measured
        assert metrics.pop(f"test2_acc_{which}") is None and metrics.pop(f"test2_top5_{which}") is None
    assert metrics.pop("test_top5_last10") is None  # (2 DivideMix epochs: no "last 10")
    assert metrics["test_acc_last"] <= metrics.pop("test_top5_last") <= 1 and metrics.pop("test_top5_best") <= 1
    assert metrics.pop("test_acc_last10") is None  # 2 DivideMix epochs: no "last 10" (never over warm-up)
    assert metrics.pop("test_acc_last10_from_epoch") is None
    for key, value in metrics.items():
        assert 0.0 <= value <= 1.0, key
    assert abs(metrics["noise_rate_actual"] - 0.45) < 0.03  # 50% sym noise keeps 1/10 of the picked labels
    # DVCLive's per-epoch histories: warm-up, then training, each epoch once; the baseline's every epoch
    warm = pd.read_csv(repro_repo / "live/warmup/plots/metrics/test_acc/ensemble.tsv", sep="\t")
    trained = pd.read_csv(repro_repo / "live/train/plots/metrics/test_acc/ensemble.tsv", sep="\t")
    assert list(warm["step"]) + list(trained["step"]) == list(range(TINY_PARAMS["train"]["epochs"]))
    baseline = pd.read_csv(repro_repo / "live/baseline/plots/metrics/test_acc.tsv", sep="\t")
    assert list(baseline["step"]) == list(range(TINY_PARAMS["train"]["epochs"]))
    live = json.loads((repro_repo / "live/train/metrics.json").read_text())
    epochs = artifacts.read_table(repro_repo / "artifacts/epochs", "epochs")
    assert live["step"] == 3 and live["test_acc"]["ensemble"] == epochs["test_acc_ensemble"].iloc[-1]
    assert live["labeled"]["by_net1"] == epochs["labeled_by_net1"].iloc[-1]
    assert not (repro_repo / "plots/accuracy.csv").exists()  # DVCLive's histories replaced it
    assert (repro_repo / "report/index.html").exists() and (repro_repo / "report/report.md").exists()
    shown = dvc(repro_repo, "metrics", "show", "--json")
    assert "test_acc_best" in shown.stdout


def test_repro_matches_the_library_run_bit_for_bit(repro_repo: Path, tiny_run: Path):
    """Same parameters, same artifacts and metrics: the DVC run and the in-process run agree exactly (CPU)."""
    assert_same_artifacts(repro_repo, tiny_run)
    for checkpoint in ("checkpoints/warmup/nets.pt", "checkpoints/train/last.pt"):  # byte for byte
        assert (repro_repo / checkpoint).read_bytes() == (tiny_run / checkpoint).read_bytes(), checkpoint
    run = RunArtifacts(tiny_run / "artifacts")
    prepared, noisy = tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet"
    truth = truth_of(prepared, noisy)
    gallery, export_figures = build_gallery(run, truth, checkpoint=tiny_run / "checkpoints/train/last.pt",
                                            prepared=prepared, noisy=noisy)
    metrics = summary_metrics(accuracy_curves(run), division_quality(run, truth), truth) | export_figures
    assert metrics == json.loads((repro_repo / "metrics/eval.json").read_text())
    expected = artifacts.table_of(gallery.sort_values("sample_index"), "gallery").to_pandas()
    pd.testing.assert_frame_equal(artifacts.read_table(repro_repo / "artifacts/gallery.parquet", "gallery"), expected)


def test_dvc_plots_name_their_axes_and_count_whole_epochs(repro_repo: Path):
    """`dvc plots show`: a title and both axis labels per plot (not DVC's default "y"), whole-epoch
    ticks (the `epochs` template in .dvc/plots)."""
    shown = json.loads(dvc(repro_repo, "plots", "show", "--json").stdout)["data"]
    assert set(shown) == {"test accuracy", "test accuracy of each network", "division AUC", "labeled set size"}
    for name, (plot,) in shown.items():
        spec = plot["content"]
        assert spec["title"]["text"] and spec["encoding"]["x"]["title"] == "epoch", name
        assert spec["data"]["values"], name  # it found its data (DVCLive's histories, evaluate's CSV)
        assert spec["encoding"]["y"]["title"] not in ("", "y"), name
        assert spec["encoding"]["x"]["axis"] == {"format": "d", "tickMinStep": 1}, name


def test_second_repro_is_a_no_op(repro_repo: Path):
    """Only `check` runs (always: it takes the sources' manifest); its output is the same, so nothing follows."""
    result = dvc(repro_repo, "repro")
    assert stages_run(result.stdout) == {"check"}


def stale_stages(root: Path) -> set[str]:
    """The stages `dvc status` finds changed (their own deps or params: one step of the graph), but
    `check`, which is always changed (it runs on every repro: the sources' manifest)."""
    status = json.loads(dvc(root, "status", "--json").stdout)
    assert "always changed" in status["check"]
    return set(status) - {"check"}


def test_editing_a_module_reruns_only_the_stages_that_execute_it(repro_repo: Path):
    """The house's promise: code deps follow the imports (a comment is enough to change a file)."""
    for relative, expected in {
        "pipeline/dividemix/audit/diff.py": set(),  # the audit runs in no stage
        "pipeline/dividemix/report/figures.py": {"report"},
    }.items():
        with open(repro_repo / relative, "a") as handle:
            handle.write("# edited by the test\n")
        assert stale_stages(repro_repo) == expected, relative
    with open(repro_repo / "pipeline/dividemix/datasets/cifar.py", "a") as handle:
        handle.write("# edited by the test\n")
    # download reruns, its output is the same: nothing after it does (report still waits for its edit)
    assert stages_run(dvc(repro_repo, "repro", "evaluate").stdout) == {"check", "download"}


def test_changing_a_parameter_reruns_only_what_depends_on_it(repro_repo: Path):
    write_params(repro_repo / "params.yaml", tiny_params(**{"train.lambda_u": 10.0}))
    assert stages_run(dvc(repro_repo, "repro").stdout) == {"check", "train", "evaluate", "report"}
    # noise.rate: the noise stage's output changes, and with it every stage reading the noisy labels
    # (the rest of the chain follows from theirs: `dvc status` sees one step at a time)
    write_params(repro_repo / "params.yaml", tiny_params(**{"train.lambda_u": 10.0, "noise.rate": 0.3}))
    assert stale_stages(repro_repo) == {"noise", "report"}  # report prints noise.rate
    assert stages_run(dvc(repro_repo, "repro", "noise").stdout) == {"check", "noise"}
    assert stale_stages(repro_repo) == {"warmup", "baseline", "train", "evaluate", "report"}
    summary = json.loads((repro_repo / "metrics/noise.json").read_text())
    assert abs(summary["noise_rate_actual"] - 0.27) < 0.03


def test_a_train_checkpoint_made_by_other_code_is_not_resumed(tmp_path: Path, tiny_run: Path, monkeypatch):
    """DVC reruns `train` when its code changes; the persisted checkpoint must then be discarded,
    or the finished run would be "resumed" and the old code's epochs kept."""
    import io

    from conftest import run_paths, stage_params
    from dividemix.config import parse_config, select
    from dividemix.training import checkpoint
    from dividemix.training.train import run_train

    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    config = parse_config(TINY_PARAMS)
    params = select(config, stage_params("train"))
    epochs = TINY_PARAMS["train"]["epochs"] - TINY_PARAMS["train"]["warmup_epochs"]

    same_code = io.StringIO()
    run_train(config, run_paths(root), params, stream=same_code)
    assert f"[train] {epochs}/{epochs}" not in same_code.getvalue()  # finished: nothing to redo

    monkeypatch.setattr(checkpoint, "training_code_digest", lambda module: {"engine": "other code"})
    other_code = io.StringIO()
    run_train(config, run_paths(root), params, stream=other_code)
    assert f"[train] 1/{epochs}" in other_code.getvalue() and "resuming" not in other_code.getvalue()
    assert_same_artifacts(root, tiny_run)  # (the code did not really change: same results)
