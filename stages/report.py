"""DVC stage `report`: one self-contained HTML page and a Markdown report with the run's figures.

With `evaluate`, the only stage that reads the true training labels (to split the losses into
truly clean and truly noisy samples).
"""

from dividemix.report.keys import PARAM_KEYS
from dividemix.run.stage import run_stage

PARAMS = list(PARAM_KEYS)  # the keys the report prints and those that find the run's paper cell
PATHS = ["prepared", "noisy", "artifacts", "metrics", "gallery", "noise_summary", "report"]


def body(config, params, paths):
    from dividemix.judging.evaluation import RunArtifacts  # inside: after run_stage's signal handlers
    from dividemix.report.build import build_report, load_json

    metrics = load_json(paths.metrics, "metrics")
    noise_summary = load_json(paths.noise_summary, "noise summary")
    build_report(
        config_params=params,
        run=RunArtifacts(paths.artifacts),
        prepared=paths.prepared,
        noisy=paths.noisy,
        metrics=metrics,
        noise_summary=noise_summary,
        out=paths.report,
        gallery=paths.gallery,
    )
    print(f"[report] {paths.report / 'index.html'} (and {paths.report / 'report.md'})")


if __name__ == "__main__":
    run_stage("report", PARAMS, PATHS, body)
