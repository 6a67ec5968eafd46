"""DVC stage `check`: the parameter file as a whole, before anything runs (`dividemix.preflight`).

Its DVC params are the whole of params.yaml, so it reruns on any change to it, a key no stage
reads included; it writes nothing.
"""

from dividemix.config import Config
from dividemix.stage import run_stage

# Every key of the schema: dvc.yaml lists the whole file instead (`- params.yaml:`), so that a key
# outside the schema reruns this stage too (and is refused).
PARAMS = [f"{section}.{key}" for section, model in Config.model_fields.items() for key in model.annotation.model_fields]
PATHS: list[str] = []


def body(config, params, paths):
    from dividemix.preflight import check_machine

    check_machine(config)
    print("[check] params.yaml: valid; what it names is here")


if __name__ == "__main__":
    run_stage("check", PARAMS, PATHS, body)
