"""DVC stage `evaluate`: judge the run against the truth; write the metrics and the division plot's data.

(The accuracy curves are the training stages' own DVCLive logs.)

The only stage (with `report`) that reads the true training labels.
"""

from dividemix.io import write_json_atomic, write_text_atomic
from dividemix.stage import run_stage

PARAMS: list[str] = []  # reads artifacts and the truth only; reruns when they change
PATHS = ["prepared", "noisy", "artifacts", "metrics", "plots"]


def body(config, params, paths):
    from dividemix import evaluation  # inside: after run_stage's signal handlers

    run = evaluation.RunArtifacts(paths.artifacts)
    clean = evaluation.known_clean_mask(paths.prepared, paths.noisy)  # None for a folder data set
    curves = evaluation.accuracy_curves(run)
    quality = evaluation.division_quality(run, clean)
    metrics = evaluation.summary_metrics(curves, quality, clean)
    write_text_atomic(paths.plots / "division.csv", evaluation.division_plot_table(quality).to_csv(index=False))
    write_json_atomic(paths.metrics, metrics, sort_keys=False)  # the paper's headline first
    print("[evaluate] " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    run_stage("evaluate", PARAMS, PATHS, body)
