"""DVC stage `noise`: make the noisy labels (injected, or read from a label file); write them and the actual noise rate."""

from dividemix.files.atomic import write_json_atomic
from dividemix.run.stage import run_stage

PARAMS = ["data.dataset", "noise.mode", "noise.rate", "noise.seed", "noise.file", "noise.key"]
PATHS = ["prepared", "noisy", "noise_summary"]


def body(config, params, paths):
    from dividemix.noise.inject import noisy_label_file  # inside: after run_stage's signal handlers

    summary = noisy_label_file(
        dataset=config.data.dataset,
        prepared=paths.prepared,
        out=paths.noisy,
        mode=config.noise.mode,
        rate=config.noise.rate,
        seed=config.noise.seed,
        file=config.noise.file,
        key=config.noise.key,
    )
    write_json_atomic(paths.noise_summary, summary)
    if summary["mode"] == "file":
        what = f"file {summary['file']}" + (f" [{summary['key']}]" if summary["key"] else "")
    else:
        what = f"{summary['mode']} r={summary['rate']}"
    if summary["n_wrong"] is None:
        print(f"[noise] {what}: {summary['n_train']} labels (truth unknown: no wrong-label rate)")
    else:
        print(f"[noise] {what}: {summary['n_wrong']} of {summary['n_train']} labels wrong "
              f"({summary['noise_rate_actual']:.2%})")


if __name__ == "__main__":
    run_stage("noise", PARAMS, PATHS, body)
