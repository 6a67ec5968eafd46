"""Where a run's files live, relative to the repository root: the layout dvc.yaml wires.

The stages take their paths from dvc.yaml (`--FIELD PATH` on their command lines, one per field of
`Paths`); everything that finds a run's files by itself (runs outside DVC, the audit commands, the
Prefect flows) reads these names. Standard library only, so the audit and the flows use them
without importing torch or training code; tests keep them equal to dvc.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

SOURCES = "data/sources.json"
TRUTH_SOURCES = "data/truth_list.json"
PREPARED = "data/prepared"
TRAIN_TRUTH = f"{PREPARED}/train_truth.npy"
NOISY_LABELS = "data/noisy/labels.parquet"
NOISE_SUMMARY = "metrics/noise.json"
WARMUP_CHECKPOINT = "checkpoints/warmup/nets.pt"
TRAIN_CHECKPOINT = "checkpoints/train/last.pt"
ARTIFACTS = "artifacts"
WARMUP_ARTIFACTS = f"{ARTIFACTS}/warmup"
BASELINE_ARTIFACTS = f"{ARTIFACTS}/baseline"
DIVISIONS = f"{ARTIFACTS}/divisions"
EPOCHS = f"{ARTIFACTS}/epochs"
EVAL_METRICS = "metrics/eval.json"
GALLERY = f"{ARTIFACTS}/gallery.parquet"  # evaluate's samples to look at (dividemix.judging.gallery)
PLOTS = "plots"
DIVISION_PLOT = f"{PLOTS}/division.csv"
REPORT = "report"
REPORT_MD = f"{REPORT}/report.md"
REPORT_HTML = f"{REPORT}/index.html"
LIVE = "live"  # DVCLive's folder of each training stage: live/warmup, live/baseline, live/train
RESUME = ".dividemix/resume"  # each training stage's kept progress (training.resume): not a DVC output


@dataclass(frozen=True)
class Paths:
    """Where a stage reads and writes: given by dvc.yaml on the command line, never hard-coded.

    A stage fills in the fields it uses (its `--FIELD` arguments); the others stay None.
    """

    sources: Path | None = None  # check's manifest of the data set's sources (datasets.sources)
    truth_sources: Path | None = None  # check's record of the verified subset's list (data.truth_list)
    prepared: Path | None = None  # download's folder (datasets.prepared)
    noisy: Path | None = None  # the noisy labels (Parquet)
    noise_summary: Path | None = None  # the noise stage's JSON metric
    warmup_checkpoint: Path | None = None  # both networks and optimisers after warm-up
    warmup_artifacts: Path | None = None  # warm-up epochs and losses (Parquet)
    baseline: Path | None = None  # the baseline's epochs and losses (Parquet)
    train_checkpoint: Path | None = None  # the resume checkpoint, written every epoch
    artifacts: Path | None = None  # root of divisions/, mixtures/, losses/, epochs/
    metrics: Path | None = None  # evaluate's metrics JSON
    gallery: Path | None = None  # evaluate's samples to look at, with predictions (Parquet)
    plots: Path | None = None  # the data of `dvc plots`
    report: Path | None = None  # index.html, report.md, figures/
    resume: Path | None = None  # the training stages' kept progress, one folder each (training.resume)
    live: Path | None = None  # the training stages' DVCLive metrics, one folder each (live.LiveLog)

    @classmethod
    def layout(cls, root: Path) -> "Paths":
        """The layout dvc.yaml wires, under `root`: for runs outside DVC (tests, benchmarks).

        The stages never use it (their paths come from dvc.yaml); a test keeps the two equal.
        """
        relative = {
            "sources": SOURCES, "truth_sources": TRUTH_SOURCES, "prepared": PREPARED, "noisy": NOISY_LABELS, "noise_summary": NOISE_SUMMARY,
            "warmup_checkpoint": WARMUP_CHECKPOINT, "warmup_artifacts": WARMUP_ARTIFACTS,
            "baseline": BASELINE_ARTIFACTS, "train_checkpoint": TRAIN_CHECKPOINT, "artifacts": ARTIFACTS,
            "metrics": EVAL_METRICS, "gallery": GALLERY, "plots": PLOTS, "report": REPORT, "resume": RESUME, "live": LIVE,
        }
        return cls(**{field.name: Path(root) / relative[field.name] for field in fields(cls)})
