"""The report stage's work: check the inputs, draw the figures, render and write the folder.

Reads the artifacts, the truth (as evaluation does: to split the losses into truly clean and truly
noisy samples), the metrics of `evaluate` and the noise summary, and writes into `out`:

    index.html          every figure embedded as a base64 PNG; no external CSS, JS or network
    report.md           the same content; figures as relative links
    figures/*.png       the figures report.md links to

The folder is built under a temporary name and swapped in whole (`dividemix.files.atomic.atomic_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dividemix.datasets.prepared import read_meta
from dividemix.drawing.thumbnails import gallery_html, gallery_markdown, thumbnail_uris
from dividemix.files import artifacts
from dividemix.files.atomic import atomic_dir
from dividemix.judging.evaluation import RunArtifacts
from dividemix.judging.truth import truth_of
from dividemix.report.figures import report_figures
from dividemix.report.keys import PARAM_KEYS
from dividemix.report.model_card import model_card, with_model_card
from dividemix.report.render import GallerySection, render_html, render_markdown, report_title, write_report_folder
from dividemix.report.tables import WEB_DATASETS, paper_comparison, results_rows, setting_rows

METRIC_KEYS = (
    "test_acc_best",
    "test_acc_last",
    "test_acc_last10",
    "ce_test_acc_best",
    "ce_test_acc_last",
    "division_auc_last",
    "division_precision_last",
    "division_recall_last",
    "noise_rate_actual",
)
NOISE_SUMMARY_KEYS = ("dataset", "mode", "rate", "seed", "n_train", "n_wrong", "noise_rate_actual")

# ------------------------------------------------------------------------------------ inputs
def load_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; a missing or malformed file raises with a one-line message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {what} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def _require(mapping: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise ValueError(f"{what}: missing {', '.join(missing)}")


def _check_noise_summary(params: dict[str, Any], summary: dict[str, Any]) -> None:
    """The noise summary must describe the noise the parameters ask for (a stale file is refused)."""
    for key in ("dataset", "mode", "rate", "seed"):
        param = "data.dataset" if key == "dataset" else f"noise.{key}"
        if summary[key] != params[param]:
            raise ValueError(
                f"noise summary: {key} is {summary[key]!r} but {param} is {params[param]!r}; rerun the noise stage"
            )


def build_report(
    *,
    config_params: dict[str, Any],
    run: RunArtifacts,
    prepared: Path,
    noisy: Path,
    metrics: dict[str, Any],
    noise_summary: dict[str, Any],
    out: Path,
    gallery: Path | None = None,
) -> None:
    """Write the report folder `out` (index.html, report.md, figures/), whole or not at all.

    `config_params` maps the dotted keys of `PARAM_KEYS` to their values (as `config.select` gives
    them); `metrics` is the `evaluate` stage's JSON, `noise_summary` the `noise` stage's. Inputs
    are checked before anything is drawn; a problem raises ValueError (or ArtifactError).
    """
    _require(config_params, PARAM_KEYS, "parameters")
    _require(metrics, METRIC_KEYS, "metrics")
    _require(noise_summary, NOISE_SUMMARY_KEYS, "noise summary")
    _check_noise_summary(config_params, noise_summary)

    truth = truth_of(prepared, noisy, config_params["data.truth_list"])  # None: nothing known
    figures = report_figures(run, truth, int(config_params["train.warmup_epochs"]))
    samples = None if gallery is None else gallery_section(gallery, prepared)
    title = report_title(config_params)
    setting = setting_rows(config_params, noise_summary)
    results = results_rows(metrics, read_meta(prepared).get("test2_name"),
                           paper_last=config_params["data.dataset"] not in WEB_DATASETS)
    paper = paper_comparison(config_params, metrics)
    markdown = render_markdown(title, setting, results, figures, paper, samples)
    page = render_html(title, setting, results, figures, paper, samples)
    card = model_card(config_params, read_meta(prepared), run.epochs(), metrics, noise_summary)
    markdown, page = with_model_card(markdown, page, card)
    with atomic_dir(out) as folder:
        write_report_folder(folder, markdown, page, figures)


def gallery_section(gallery: Path, prepared: Path) -> GallerySection:
    """evaluate's gallery as thumbnails read from the prepared store, with their labels."""
    frame = artifacts.read_table(gallery, "gallery")
    classes = list(read_meta(prepared)["classes"])
    uris = thumbnail_uris(prepared, frame["sample_index"].to_numpy())
    return GallerySection(gallery_html(frame, uris, classes), gallery_markdown(frame, classes))
