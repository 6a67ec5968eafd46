"""DVC stage `evaluate`: judge the run against the truth; write metrics and the data of `dvc plots`.

The only stage (with `report`) that reads the true training labels.
"""

from pathlib import Path

from dividemix.evaluation import (
    RunArtifacts,
    accuracy_curves,
    division_plot_table,
    division_quality,
    known_clean_mask,
    summary_metrics,
)
from dividemix.io import write_json_atomic, write_text_atomic
from dividemix.stage import run_stage

PARAMS: list[str] = []  # reads artifacts and the truth only; reruns when they change


def add_arguments(parser):
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--noisy", type=Path, required=True)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="folder for accuracy.csv and division.csv")


def body(config, params, args):
    run = RunArtifacts(args.artifacts)
    clean = known_clean_mask(args.prepared, args.noisy)  # None for a folder data set
    curves = accuracy_curves(run)
    quality = division_quality(run, clean)
    metrics = summary_metrics(curves, quality, clean)
    write_text_atomic(args.plots / "accuracy.csv", curves.drop(columns="phase").to_csv(index=False))
    write_text_atomic(args.plots / "division.csv", division_plot_table(quality).to_csv(index=False))
    write_json_atomic(args.metrics, metrics)
    print("[evaluate] " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    run_stage("evaluate", PARAMS, add_arguments, body)
