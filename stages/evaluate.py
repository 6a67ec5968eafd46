"""DVC stage `evaluate`: judge the run against the truth; write the metrics, the division plot's
data and the gallery of samples to look at.

(The accuracy curves are the training stages' own DVCLive logs.)

With `report`, the only stage that reads the true training labels, or the verified subset of a
folder data set (`data.truth_list`).
"""

from dividemix.files.atomic import write_json_atomic, write_text_atomic
from dividemix.run.stage import run_stage

PARAMS = ["data.truth_list"]  # the rest it reads are artifacts and the truth: it reruns when they change
PATHS = ["prepared", "noisy", "artifacts", "train_checkpoint", "metrics", "gallery", "plots"]


def body(config, params, paths):
    from dividemix.files import artifacts  # inside: after run_stage's signal handlers
    from dividemix.judging import evaluation
    from dividemix.judging.gallery import build_gallery
    from dividemix.judging.truth import truth_of

    run = evaluation.RunArtifacts(paths.artifacts)
    truth = truth_of(paths.prepared, paths.noisy, config.data.truth_list)  # None: nothing known
    curves = evaluation.accuracy_curves(run)
    quality = evaluation.division_quality(run, truth)
    gallery, export_figures = build_gallery(run, truth, checkpoint=paths.train_checkpoint,
                                            prepared=paths.prepared, noisy=paths.noisy)
    metrics = evaluation.summary_metrics(curves, quality, truth) | export_figures
    artifacts.write_table(paths.gallery, "gallery", artifacts.table_of(gallery, "gallery"))
    write_text_atomic(paths.plots / "division.csv", evaluation.division_plot_table(quality).to_csv(index=False))
    write_json_atomic(paths.metrics, metrics, sort_keys=False)  # the paper's headline first
    print("[evaluate] " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    run_stage("evaluate", PARAMS, PATHS, body)
