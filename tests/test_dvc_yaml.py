"""dvc.yaml and the stage scripts agree: each stage's params are exactly the keys its script reads."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO, stage_params
from dividemix.config import Config

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def test_the_pipeline_has_the_documented_stages_in_order():
    assert list(STAGES) == ["download", "noise", "warmup", "baseline", "train", "evaluate", "report"]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_are_exactly_the_keys_its_script_declares(name: str):
    declared = stage_params(name)
    assert sorted(STAGES[name].get("params", [])) == sorted(declared)
    for key in declared:  # every declared key exists in the config schema
        section, field = key.split(".")
        assert field in Config.model_fields[section].annotation.model_fields


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_depends_on_its_own_script_and_runs_it(name: str):
    assert f"stages/{name}.py" in STAGES[name]["deps"]
    assert STAGES[name]["cmd"].startswith(f"python stages/{name}.py")


def test_every_params_yaml_key_is_read_by_some_stage():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = {f"{section}.{key}" for section, values in params.items() for key in values}
    read = {key for stage in STAGES.values() for key in stage.get("params", [])}
    assert keys == read


def test_the_library_layout_is_the_one_dvc_yaml_wires(tmp_path):
    """Paths.layout (tests, benchmarks) names the same files as the stage commands."""
    from dividemix.engine import Paths

    commands = " ".join(stage["cmd"] for stage in STAGES.values())
    layout = Paths.layout(tmp_path)
    for field in layout.__dataclass_fields__:
        relative = getattr(layout, field).relative_to(tmp_path).as_posix()
        assert f" {relative} " in f" {commands} ", field
