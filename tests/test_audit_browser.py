"""The HTML pages in a real browser: headless Chromium (tests/browser.py) loads them with no
console error, every image renders, and a screenshot of each is kept as a test artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from browser import PNG_SIGNATURE, check_page, keep_screenshot, needs_chromium
from conftest import TINY_PARAMS
from dividemix.files import artifacts

pytestmark = [needs_chromium, pytest.mark.stage]


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
    from dividemix.judging.evaluation import RunArtifacts, accuracy_curves, division_quality, summary_metrics
    from dividemix.judging.truth import truth_of
    from dividemix.noise.inject import noisy_label_file
    from dividemix.report.build import PARAM_KEYS, build_report

    prepared, noisy = tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet"
    run = RunArtifacts(tiny_run / "artifacts")
    clean = truth_of(prepared, noisy)
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
    page = tmp_path / "diff.html"
    from dividemix_cli import main

    assert main(["diff", str(tiny_run), str(other), "--by-class", "--html", str(page)]) == 0
    check = check_page(page, tmp_path / "chrome")
    keep_screenshot(check, tmp_path, "audit_diff.png")
    assert check.problems() == []
    figures = [image for image in check.images if image["naturalWidth"] >= 400]
    assert len(figures) == 5  # sizes, movements, quality, clean probabilities, per class
    # the samples that moved (30 per network), the largest changes first, as thumbnails from the store
    thumbs = [image for image in check.images if image["naturalWidth"] == 72]
    assert len(thumbs) == 24 and all(image["alt"].split()[0][1:].isdigit() for image in thumbs)
    assert {int(image["alt"].split()[0][1:]) for image in thumbs} <= set(range(30))


def test_inspect_page_shows_the_gallery_as_thumbnails(tiny_run: Path, tmp_path: Path, capsys):
    """`dividemix inspect`: per class the distrusted and the most trusted samples, from the store."""
    from dividemix.judging.evaluation import RunArtifacts
    from dividemix.judging.gallery import build_gallery
    from dividemix.judging.truth import truth_of
    from dividemix_cli import main

    run = tmp_path / "run"
    for part in ("data", "artifacts", "checkpoints"):
        shutil.copytree(tiny_run / part, run / part)
    prepared, noisy = run / "data/prepared", run / "data/noisy/labels.parquet"
    gallery, _ = build_gallery(RunArtifacts(run / "artifacts"), truth_of(prepared, noisy),
                               checkpoint=run / "checkpoints/train/last.pt", prepared=prepared, noisy=noisy)
    artifacts.write_table(run / "artifacts/gallery.parquet", "gallery", artifacts.table_of(gallery, "gallery"))
    assert len(gallery) == 10 * 6 and (gallery.groupby("noisy_label").size() == 6).all()  # 4 distrusted + 2 clean
    page = tmp_path / "inspect.html"
    assert main(["inspect", "--source", str(run), "--out", str(page)]) == 0
    check = check_page(page, tmp_path / "chrome")
    keep_screenshot(check, tmp_path, "inspect.png")
    assert check.problems() == [] and len(check.images) == 60
    assert all(image["naturalWidth"] == 72 for image in check.images)
    assert main(["inspect", "--source", str(run), "--class", "3", "--out", str(page)]) == 0
    assert page.read_text().count("<img") == 6
    capsys.readouterr()
    assert main(["inspect", "--source", str(run), "--class", "x", "--out", str(page)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
