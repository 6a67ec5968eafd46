"""DVC stage `check`: the parameter file as a whole, and the manifest of the data's sources.

Its DVC params are the whole of params.yaml, so it reruns on any change to it, a key no stage
reads included (`dividemix.run.preflight`). It is also `always_changed`: DVC runs it on every `dvc
repro`, and it writes data/sources.json (`datasets.sources`), on which `download` depends, so a
changed image or list of a folder data set reruns `download`, and an unchanged one does not.
"""

from dividemix.config import Config
from dividemix.files.atomic import write_json_atomic
from dividemix.run.stage import run_stage

# Every key of the schema: dvc.yaml lists the whole file instead (`- params.yaml:`), so that a key
# outside the schema reruns this stage too (and is refused).
PARAMS = [f"{section}.{key}" for section, model in Config.model_fields.items() for key in model.annotation.model_fields]
PATHS = ["sources", "truth_sources"]


def body(config, params, paths):
    from dividemix.datasets.sources import manifest, truth_manifest
    from dividemix.run.preflight import check_machine

    check_machine(config)
    sources = manifest(config.data)
    write_json_atomic(paths.sources, sources)  # the same bytes when nothing changed: download stays cached
    write_json_atomic(paths.truth_sources, truth_manifest(config.data))  # evaluate's and report's
    images = sources.get("images")
    what = f"; {images['count']} listed images, {images['bytes'] / 1e9:.2f} GB" if images else ""
    print(f"[check] params.yaml: valid; what it names is here{what}")


if __name__ == "__main__":
    run_stage("check", PARAMS, PATHS, body)
