"""DVC stage `report`: one self-contained HTML page and a Markdown report with the run's figures.

With `evaluate`, the only stage that reads the true training labels (to split the losses into
truly clean and truly noisy samples).
"""

from pathlib import Path

from dividemix.evaluation import RunArtifacts
from dividemix.report import PARAM_KEYS, build_report, load_json
from dividemix.stage import run_stage

PARAMS = list(PARAM_KEYS)  # the keys the report prints and those that find the run's paper cell


def add_arguments(parser):
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--noisy", type=Path, required=True)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON of the evaluate stage")
    parser.add_argument("--noise-summary", type=Path, required=True, help="noise summary JSON of the noise stage")
    parser.add_argument("--out", type=Path, required=True, help="report folder (index.html, report.md, figures/)")


def body(config, params, args):
    metrics = load_json(args.metrics, "metrics")
    noise_summary = load_json(args.noise_summary, "noise summary")
    build_report(
        config_params=params,
        run=RunArtifacts(args.artifacts),
        prepared=args.prepared,
        noisy=args.noisy,
        metrics=metrics,
        noise_summary=noise_summary,
        out=args.out,
    )
    print(f"[report] {args.out / 'index.html'} (and {args.out / 'report.md'})")


if __name__ == "__main__":
    run_stage("report", PARAMS, add_arguments, body)
