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
from dividemix.paper.presets import CELL_KEYS, FIGURE_KEYS, apply_overrides, get_preset
from dividemix.report.build import PARAM_KEYS, build_report
from dividemix.report.figures import histogram_epochs
from dividemix.report.tables import NO_PAPER_CELL, NOT_LIKE, format_percent, paper_comparison, results_rows

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
    assert set(CELL_KEYS) <= set(PARAM_KEYS) and set(FIGURE_KEYS) <= set(PARAM_KEYS)


def test_digits_has_no_paper_cell(report: Path):
    md = (report / "report.md").read_text(encoding="utf-8")
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "## Against the paper" in md and NO_PAPER_CELL in md
    assert "no paper cell for this setting" in page.lower()


def _preset_run(name: str, **changes) -> dict:
    """The report's parameters of a run of preset `name` (the user's data.root where it needs one)."""
    raw = apply_overrides(TINY_PARAMS, get_preset(name).overrides)
    if get_preset(name).figures:
        raw = apply_overrides(raw, {"data.root": "/data/web"})
    return select(parse_config(raw), list(PARAM_KEYS)) | changes


def test_a_paper_cell_is_printed_beside_a_like_for_like_run(inputs: dict, tmp_path: Path):
    params = _preset_run("cifar10-sym50", **{"noise.seed": inputs["params"]["noise.seed"]})
    summary = inputs["noise_summary"] | {"dataset": "cifar10"}
    out = tmp_path / "report"
    build(inputs, out, config_params=params, noise_summary=summary)
    md = (out / "report.md").read_text(encoding="utf-8")
    metrics = inputs["metrics"]
    best_row = f"| Best epoch's test accuracy (an oracle) | {format_percent(metrics['test_acc_best'])} | 94.60% |"
    last_row = f"fewer than 10 in this run | {format_percent(metrics['test_acc_last10'])} | 94.40% |"
    assert best_row in md and last_row in md
    assert "preset cifar10-sym50" in md and NO_PAPER_CELL not in md and "Like for like" in md
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "94.60%" in page and "cifar10-sym50" in page


def test_a_departed_run_is_not_set_beside_the_paper(inputs: dict, tmp_path: Path):
    """The tiny run has the cell's data and noise but not its schedule: the paper's numbers stay out."""
    params = inputs["params"] | {"data.dataset": "cifar10", "noise.rate": 0.5}
    summary = inputs["noise_summary"] | {"dataset": "cifar10"}
    out = tmp_path / "report"
    build(inputs, out, config_params=params, noise_summary=summary)
    md = (out / "report.md").read_text(encoding="utf-8")
    against = md[md.index("## Against the paper"):md.index("## Figures")]
    assert "94.60" not in against and "94.40" not in against and against.count(NOT_LIKE) == 2
    assert "Not like for like" in against and "preset cifar10-sym50" in against
    assert "train.epochs 4 (preset 301)" in against and "model.arch cnn_small (preset preact_resnet18)" in against


def test_a_web_report_does_not_call_its_last_10_the_papers_last(inputs: dict, tmp_path: Path):
    params = _preset_run("webvision", **{"noise.seed": inputs["params"]["noise.seed"]})
    summary = inputs["noise_summary"] | {"dataset": "webvision", "mode": "none", "rate": params["noise.rate"]}
    out = tmp_path / "report"
    build(inputs, out, config_params=params, noise_summary=summary)
    results = (out / "report.md").read_text(encoding="utf-8").split("## Results")[1].split("## Against the paper")[0]
    assert "Last 10 DivideMix epochs" in results and "the paper's \"last\"" not in results


def test_paper_comparison_rows():
    metrics = {"test_acc_best": 0.9312, "test_acc_last10": 0.9255, "test_acc_last10_from_epoch": 291}
    params = _preset_run("cifar10n-worst")
    paper = paper_comparison(params, metrics)
    assert paper.preset == "cifar10n-worst"
    assert paper.rows == [
        ("Last 10 DivideMix epochs, mean test accuracy (the paper's \"last\"; epochs 291-300)", "92.55%", "not reported"),
        ("Best epoch's test accuracy (an oracle)", "93.12%", "92.56%"),
    ]
    assert "Like for like" in paper.note
    # the CIFAR-N paper's figure is a ResNet-34's: its column and the note say so
    assert paper.header[2] == "Paper: ResNet-34 (the CIFAR-N paper's network for every method)"
    assert "another network" in paper.note and "model.arch is preact_resnet18" in paper.note
    off = paper_comparison(params | {"noise.key": "random_label3"}, metrics)
    assert (off.preset, off.rows, off.note) == (None, [], NO_PAPER_CELL)


WEB_METRICS = {"test_acc_best": 0.80, "test_acc_last": 0.78, "test_acc_last10": 0.77, "test_acc_last10_from_epoch": 71,
               "test_acc_best_val": 0.7475, **{f"{key}_{which}": 0.9 for key in ("test_top5", "test2_acc", "test2_top5")
                                               for which in ("last10", "last", "best")}}


def test_web_cells_say_which_figure_the_paper_number_is():
    clothing = paper_comparison(_preset_run("clothing1m"), WEB_METRICS)
    assert clothing.rows == [("Clothing1M test top-1 (best-validation weights, ensembled)",
                              "74.75% (best-validation weights)", "74.76%")]
    assert "best-validation weights" in clothing.header[2]
    web = paper_comparison(_preset_run("webvision"), WEB_METRICS)
    assert "official log" in web.header[2] and "0-80" in web.header[2]
    assert web.rows[0] == ("WebVision val top-1",
                           ("77.00% (last 10, epochs 71-80) · 78.00% (last) · 80.00% (best epoch, an oracle)"), "77.32%")
    # 100 classes is another experiment: the example of a cell's name trusted
    wide = paper_comparison(_preset_run("webvision", **{"data.num_classes": 100}), WEB_METRICS)
    assert [row[2] for row in wide.rows] == [NOT_LIKE] * 4 and "data.num_classes 100 (preset null)" in wide.note


def test_the_headline_calls_last_10_the_papers_last_only_where_its_table_has_one():
    cifar = results_rows(WEB_METRICS | {"ce_test_acc_last": None, "ce_test_acc_best": None, "test_acc_best_val": None,
                                        **{f"division_{k}_last": None for k in ("auc", "precision", "recall")}})
    web = results_rows(WEB_METRICS | {"ce_test_acc_last": None, "ce_test_acc_best": None,
                                      **{f"division_{k}_last": None for k in ("auc", "precision", "recall")}},
                       paper_last=False)
    assert "the paper's \"last\"" in cifar[0][0] and "the paper's \"last\"" not in web[0][0]
    assert "epochs 71-80" in web[0][0] and "give no \"last\"" in web[0][0]


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
