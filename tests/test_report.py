"""The report: a self-contained HTML page and a Markdown file, built from a tiny run."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_PARAMS, run_stage_script, write_params
from dividemix.config import parse_config, select
from dividemix.files import artifacts
from dividemix.judging.evaluation import RunArtifacts, accuracy_curves, division_quality, summary_metrics
from dividemix.judging.gallery import build_gallery
from dividemix.judging.truth import truth_of
from dividemix.noise.inject import noisy_label_file
from dividemix.paper.presets import CELL_KEYS
from dividemix.report.build import PARAM_KEYS, build_report
from dividemix.report.figures import histogram_epochs
from dividemix.report.tables import NO_PAPER_CELL, format_percent, paper_comparison, results_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
MD_LINK = re.compile(r"\]\((figures/[^)]+\.png)\)")


@pytest.fixture(scope="module")
def inputs(tiny_run: Path, tmp_path_factory) -> dict:
    """What the report stage reads: the run, its metrics and the noise summary (written aside)."""
    scratch = tmp_path_factory.mktemp("report_inputs")
    prepared, noisy = tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet"
    run = RunArtifacts(tiny_run / "artifacts")
    truth = truth_of(prepared, noisy)
    gallery, export_figures = build_gallery(run, truth, checkpoint=tiny_run / "checkpoints/train/last.pt",
                                            prepared=prepared, noisy=noisy)
    artifacts.write_table(scratch / "gallery.parquet", "gallery", artifacts.table_of(gallery, "gallery"))
    metrics = summary_metrics(accuracy_curves(run), division_quality(run, truth), truth) | export_figures
    noise = TINY_PARAMS["noise"]
    summary = noisy_label_file(dataset="digits", prepared=prepared, out=scratch / "labels.parquet", **noise)
    (scratch / "eval.json").write_text(json.dumps(metrics))
    (scratch / "noise.json").write_text(json.dumps(summary))
    return {
        "params": select(parse_config(TINY_PARAMS), list(PARAM_KEYS)),
        "run": run, "prepared": prepared, "noisy": noisy, "metrics": metrics, "noise_summary": summary,
        "metrics_file": scratch / "eval.json", "noise_file": scratch / "noise.json",
        "gallery": scratch / "gallery.parquet", "gallery_rows": gallery,
    }


def build(inputs: dict, out: Path, **overrides) -> None:
    kwargs = dict(
        config_params=inputs["params"], run=inputs["run"], prepared=inputs["prepared"], noisy=inputs["noisy"],
        metrics=inputs["metrics"], noise_summary=inputs["noise_summary"], out=out, gallery=inputs["gallery"],
    )
    build_report(**(kwargs | overrides))


@pytest.fixture(scope="module")
def report(inputs: dict, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    build(inputs, out)
    return out


def test_html_is_self_contained_with_embedded_pngs(report: Path):
    page = (report / "index.html").read_text(encoding="utf-8")
    images = IMG.findall(page)
    assert len(images) >= 4
    for data in images:
        assert base64.b64decode(data, validate=True).startswith(PNG_SIGNATURE)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_markdown_reports_setting_results_and_linked_figures(report: Path, inputs: dict):
    md = (report / "report.md").read_text(encoding="utf-8")
    metrics = inputs["metrics"]
    assert "sym" in md and format_percent(TINY_PARAMS["noise"]["rate"]) in md
    for key in ("test_acc_best", "test_acc_last", "test_acc_last10", "ce_test_acc_best", "ce_test_acc_last"):
        assert format_percent(metrics[key]) in md, key
    assert format_percent(inputs["noise_summary"]["noise_rate_actual"]) in md
    links = MD_LINK.findall(md)
    assert len(links) >= 4
    for link in links:
        assert (report / link).read_bytes().startswith(PNG_SIGNATURE), link
    # the loss histograms: the first and the last DivideMix epoch (2 and 3 in the tiny run)
    assert {"figures/loss_hist_epoch_002.png", "figures/loss_hist_epoch_003.png"} <= set(links)


def test_undefined_metrics_print_na_and_a_rebuild_replaces_the_folder(report: Path, inputs: dict, tmp_path: Path):
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "stale.txt").write_text("old")
    metrics = inputs["metrics"] | {"division_auc_last": None}
    build(inputs, out, metrics=metrics)
    assert not (out / "stale.txt").exists()
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| Division AUC, last epoch | n/a |" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left


def curves_of(warmup: int, dividemix: int):
    """Accuracy curves of a run with these epoch counts: accuracy = epoch / 100."""
    import pandas as pd

    epochs = range(warmup + dividemix)
    return pd.DataFrame({"epoch": list(epochs), "phase": ["warmup"] * warmup + ["dividemix"] * dividemix,
                         "dividemix": [e / 100 for e in epochs], "baseline": [0.5] * len(epochs)})


def test_the_last_10_figure_is_over_dividemix_epochs_only_or_left_out():
    """The paper's "last": the mean of the last 10 epochs, never averaged over warm-up epochs."""
    import pandas as pd

    from dividemix.judging.evaluation import summary_metrics

    quality = pd.DataFrame({"epoch": [0], "auc": [float("nan")], "precision": [float("nan")], "recall": [float("nan")]})
    long = summary_metrics(curves_of(5, 12), quality, None)
    assert long["test_acc_last10"] == pytest.approx(sum(range(7, 17)) / 1000)  # epochs 7-16
    assert long["test_acc_last10_from_epoch"] == 7
    assert list(long)[:3] == ["test_acc_last10", "test_acc_last10_from_epoch", "test_acc_last"]  # the headline first
    short = summary_metrics(curves_of(10, 3), quality, None)
    assert short["test_acc_last10"] is None and short["test_acc_last10_from_epoch"] is None
    label = results_rows(short | {k: None for k in ("division_auc_last", "division_precision_last",
                                                    "division_recall_last")})[0][0]
    assert "fewer than 10" in label
    label = results_rows(long)[0][0]
    assert label.startswith("Last 10 DivideMix epochs") and "epochs 7-16" in label
    assert "oracle" in results_rows(long)[2][0]  # "best" is labelled for what it is


def test_formatting_and_histogram_epochs():
    assert format_percent(0.12345) == "12.35%"
    assert format_percent(None) == "n/a" and format_percent(float("nan")) == "n/a"
    rows = results_rows({key: None for key in (
        "test_acc_best", "test_acc_last", "test_acc_last10", "ce_test_acc_best", "ce_test_acc_last",
        "division_auc_last", "division_precision_last", "division_recall_last")})
    assert all(cell in ("n/a", "—") for row in rows for cell in row[1:])
    assert histogram_epochs([]) == []
    assert histogram_epochs([5]) == [5]
    assert histogram_epochs(list(range(10, 30))) == [10, 20, 29]


def test_a_stale_noise_summary_is_refused_before_writing(inputs: dict, tmp_path: Path):
    with pytest.raises(ValueError, match="noise.rate"):
        build(inputs, tmp_path / "report", noise_summary=inputs["noise_summary"] | {"rate": 0.2})
    assert not (tmp_path / "report").exists()


def stage_args(inputs: dict, tiny_run: Path, metrics: Path, out: Path) -> list[str]:
    return [
        "--params", "params.yaml",
        "--prepared", str(tiny_run / "data/prepared"),
        "--noisy", str(tiny_run / "data/noisy/labels.parquet"),
        "--artifacts", str(tiny_run / "artifacts"),
        "--metrics", str(metrics),
        "--gallery", str(inputs["gallery"]),
        "--noise-summary", str(inputs["noise_file"]),
        "--report", str(out),
    ]


def test_stage_script_writes_the_report(inputs: dict, tiny_run: Path, tmp_path: Path):
    write_params(tmp_path / "params.yaml", TINY_PARAMS)
    out = tmp_path / "report"
    result = run_stage_script("report", stage_args(inputs, tiny_run, inputs["metrics_file"], out), cwd=tmp_path)
    assert result.returncode == 0
    assert (out / "index.html").exists() and (out / "report.md").exists()
    assert len(result.stdout.strip().splitlines()) == 1 and "index.html" in result.stdout


def test_stage_script_without_metrics_exits_2_and_writes_nothing(inputs: dict, tiny_run: Path, tmp_path: Path):
    write_params(tmp_path / "params.yaml", TINY_PARAMS)
    out = tmp_path / "report"
    args = stage_args(inputs, tiny_run, tmp_path / "missing.json", out)
    result = run_stage_script("report", args, cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.json" in lines[0], result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


# ------------------------------------------------------------------------- against the paper
def test_the_report_reads_every_key_that_defines_a_paper_cell():
    assert set(CELL_KEYS) <= set(PARAM_KEYS)


def test_digits_has_no_paper_cell(report: Path):
    md = (report / "report.md").read_text(encoding="utf-8")
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "## Against the paper" in md and NO_PAPER_CELL in md
    assert "no paper cell for this setting" in page.lower()


def test_a_paper_cell_is_printed_beside_the_run(inputs: dict, tmp_path: Path):
    params = inputs["params"] | {"data.dataset": "cifar10", "noise.rate": 0.5}
    summary = inputs["noise_summary"] | {"dataset": "cifar10"}
    out = tmp_path / "report"
    build(inputs, out, config_params=params, noise_summary=summary)
    md = (out / "report.md").read_text(encoding="utf-8")
    metrics = inputs["metrics"]
    best_row = f"| Best epoch's test accuracy (an oracle) | {format_percent(metrics['test_acc_best'])} | 94.60% |"
    last_row = f"fewer than 10 in this run | {format_percent(metrics['test_acc_last10'])} | 94.40% |"
    assert best_row in md and last_row in md
    assert "preset cifar10-sym50" in md and NO_PAPER_CELL not in md
    # the tiny run is not the paper's schedule, and the report says where it departs
    assert "train.epochs 4 (preset 300)" in md and "model.arch cnn_small (preset preact_resnet18)" in md
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "94.60%" in page and "cifar10-sym50" in page


def test_paper_comparison_rows():
    metrics = {"test_acc_best": 0.9312, "test_acc_last10": 0.9255, "test_acc_last10_from_epoch": 290}
    params = {"data.dataset": "cifar10", "noise.mode": "file", "noise.rate": 0.5, "noise.seed": 1,
              "noise.file": "labels/CIFAR-10_human.pt", "noise.key": "worse_label", "model.arch": "preact_resnet18",
              "train.protocol": "cifar", "train.epochs": 300, "train.warmup_epochs": 10, "train.lambda_u": 25.0,
              "train.p_threshold": 0.5, "train.loss_history": 1}
    paper = paper_comparison(params, metrics)
    assert paper.preset == "cifar10n-worst"
    assert paper.rows == [
        ("Last 10 DivideMix epochs, mean test accuracy (the paper's \"last\"; epochs 290-299)", "92.55%", "not reported"),
        ("Best epoch's test accuracy (an oracle)", "93.12%", "92.56%"),
    ]
    assert "uses the preset's values" in paper.note
    # the CIFAR-N paper's figure is a ResNet-34's: its column and the note say so
    assert paper.header[2] == "Paper: ResNet-34 (the CIFAR-N paper's network for every method)"
    assert "another network" in paper.note and "model.arch is preact_resnet18" in paper.note
    off = paper_comparison(params | {"noise.key": "random_label3"}, metrics)
    assert (off.preset, off.rows, off.note) == (None, [], NO_PAPER_CELL)


def test_the_report_shows_the_samples_to_look_at_as_thumbnails(report: Path, inputs: dict):
    """Per class the distrusted and the most trusted samples, from the prepared store, with labels."""
    gallery = inputs["gallery_rows"]
    page = (report / "index.html").read_text()
    section = page[page.index('<h2 id="samples">'):]
    assert section.count('<div class="sample ') == len(gallery) == 60  # 10 classes x (4 + 2)
    from dividemix.judging.gallery import final_division

    _, final, _ = final_division(inputs["run"])
    for label, rows in gallery.groupby("noisy_label"):  # the class's 4 least and 2 most trusted samples
        probs = np.sort(final.loc[final["noisy_label"] == label, "clean_prob"].to_numpy())
        groups = rows.groupby("group")["clean_prob"]
        assert sorted(groups.get_group("distrusted")) == pytest.approx(probs[:4].tolist())
        assert sorted(groups.get_group("clean")) == pytest.approx(probs[-2:].tolist())
    for row in gallery.head(3).itertuples():
        assert f"#{row.sample_index} {row.group}" in section and f"clean p {row.clean_prob:.3f}" in section
    markdown = (report / "report.md").read_text()
    assert "## Samples to look at" in markdown and len(re.findall(r"^\| \d+ \| distrusted \|", markdown, re.M)) == 40
    assert "Division figures rest on" in markdown and "all with their true label" in markdown
