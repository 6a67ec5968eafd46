"""The HTML pages in a real browser: headless Chromium (tests/browser.py) loads them with no
console error, every image renders, and a screenshot of each is kept as a test artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from browser import PNG_SIGNATURE, check_page, keep_screenshot, needs_chromium
from conftest import TINY_PARAMS
from dividemix import artifacts
from dividemix.audit.diff import diff_runs
from dividemix.audit.pages import diff_html
from dividemix.audit.sources import open_source

pytestmark = needs_chromium


# -------------------------------------------------------------------- the checker can fail
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_checker_passes_a_clean_page(tmp_path: Path):
    page = tmp_path / "ok.html"
    page.write_text(f'<!DOCTYPE html><html><body><p>ok</p><img alt="dot" src="data:image/png;base64,{PIXEL}">'
                    "</body></html>")
    check = check_page(page, tmp_path / "chrome")
    assert check.problems() == []
    assert check.images[0]["naturalWidth"] == 1
    assert check.screenshot.startswith(PNG_SIGNATURE)


def test_checker_catches_a_broken_image(tmp_path: Path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="gone" src="missing.png">'
                    '<img alt="garbage" src="data:image/png;base64,AAAA"></body></html>')
    problems = check_page(page, tmp_path / "chrome").problems()
    assert "image 'gone' did not render" in problems
    assert "image 'garbage' did not render" in problems


def test_checker_catches_console_errors_and_exceptions(tmp_path: Path):
    page = tmp_path / "noisy.html"
    page.write_text('<!DOCTYPE html><html><body><script>console.error("boom", 42);'
                    'setTimeout(() => { throw new Error("late failure"); }, 50);</script></body></html>')
    problems = check_page(page, tmp_path / "chrome").problems()
    assert any("console.error: boom 42" in p for p in problems), problems
    assert any("late failure" in p for p in problems), problems


# ------------------------------------------------------------------------------ the real pages
def test_report_page_renders_in_chromium(tiny_run: Path, tmp_path: Path):
    """report/index.html as the report stage builds it, from a tiny run."""
    from dividemix.config import parse_config, select
    from dividemix.evaluation import RunArtifacts, accuracy_curves, clean_mask, division_quality, summary_metrics
    from dividemix.noise import noisy_label_file
    from dividemix.report.build import PARAM_KEYS, build_report

    prepared, noisy = tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet"
    run = RunArtifacts(tiny_run / "artifacts")
    clean = clean_mask(prepared, noisy)
    summary = noisy_label_file(dataset="digits", prepared=prepared, out=tmp_path / "labels.parquet",
                               **TINY_PARAMS["noise"])
    build_report(
        config_params=select(parse_config(TINY_PARAMS), list(PARAM_KEYS)), run=run, prepared=prepared,
        noisy=noisy, metrics=summary_metrics(accuracy_curves(run), division_quality(run, clean), clean),
        noise_summary=summary, out=tmp_path / "report",
    )
    check = check_page(tmp_path / "report/index.html", tmp_path / "chrome")
    keep_screenshot(check, tmp_path, "report_index.png")
    assert check.problems() == []
    assert len(check.images) >= 4
    assert all(image["naturalWidth"] >= 400 for image in check.images)


def test_diff_page_renders_in_chromium(tiny_run: Path, tmp_path: Path):
    """The `dividemix diff --html` page: a real run against a copy whose last division moved 30 samples."""
    other = tmp_path / "other"
    shutil.copytree(tiny_run / "data", other / "data")
    shutil.copytree(tiny_run / "artifacts/divisions", other / "artifacts/divisions")
    last = other / "artifacts/divisions/epoch_003.parquet"
    frame = artifacts.read_table(last, "divisions")
    moved = frame["sample_index"] < 30
    frame.loc[moved, "labeled"] = ~frame.loc[moved, "labeled"]
    frame.loc[moved, "clean_prob"] = 1.0 - frame.loc[moved, "clean_prob"]
    artifacts.write_table(last, "divisions", {c: frame[c].to_numpy() for c in frame.columns}, artifacts.read_meta(last))
    result = diff_runs(open_source(str(tiny_run)), open_source(str(other)), by_class=True)
    page = tmp_path / "diff.html"
    page.write_text(diff_html(result), encoding="utf-8")
    check = check_page(page, tmp_path / "chrome")
    keep_screenshot(check, tmp_path, "audit_diff.png")
    assert check.problems() == []
    assert len(check.images) == 5  # sizes, movements, quality, clean probabilities, per class
    assert all(image["naturalWidth"] >= 400 for image in check.images)
