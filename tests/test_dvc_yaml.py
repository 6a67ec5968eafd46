"""dvc.yaml and the stage scripts agree: each stage's params are exactly the keys its script reads."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO, stage_module, stage_params
from dividemix.config import RESULT_NEUTRAL, Config
from dividemix.run.code_deps import SOURCE_ROOT, closure
from dividemix.run.stage import flag

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def test_the_pipeline_has_the_documented_stages_in_order():
    assert list(STAGES) == ["check", "download", "noise", "warmup", "baseline", "train", "evaluate", "report"]


@pytest.mark.parametrize("name", [name for name in STAGES if name != "check"])
def test_stage_params_are_exactly_the_keys_its_script_declares(name: str):
    declared = stage_params(name)
    assert sorted(STAGES[name].get("params", [])) == sorted(declared)
    for key in declared:  # every declared key exists in the config schema
        section, field = key.split(".")
        assert field in Config.model_fields[section].annotation.model_fields


def test_the_check_stage_depends_on_the_whole_parameter_file():
    """So that any change of params.yaml, a key no other stage reads included, reruns it."""
    assert STAGES["check"]["params"] == [{"params.yaml": None}]
    # its one output, the sources' manifest, is taken on every repro (a changed image reruns download)
    assert STAGES["check"]["outs"] == [{"data/sources.json": {"persist": True}}, {"data/truth_list.json": {"persist": True}}]
    assert "metrics" not in STAGES["check"]
    assert STAGES["check"]["always_changed"] is True and "data/sources.json" in STAGES["download"]["deps"]
    declared = stage_params("check")  # what it validates: every key of the schema
    assert sorted(declared) == sorted(f"{s}.{k}" for s, m in Config.model_fields.items() for k in m.annotation.model_fields)


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_depends_on_its_own_script_and_runs_it(name: str):
    assert f"stages/{name}.py" in STAGES[name]["deps"]
    # exec: the stage replaces the shell, so that it is DVC's own child and dies with it
    assert STAGES[name]["cmd"].startswith(f"exec python stages/{name}.py")


@pytest.mark.parametrize("name", list(STAGES))
def test_every_output_persists(name: str):
    """DVC must not delete an output before its stage runs: a refused stage leaves it as it was."""
    for kind in ("outs", "metrics", "plots"):
        for entry in STAGES[name].get(kind, []):
            assert isinstance(entry, dict) and next(iter(entry.values())).get("persist") is True, (kind, entry)


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_code_deps_are_exactly_the_library_files_its_script_executes(name: str):
    """Editing a module reruns exactly the stages that run it (and a lazy import counts)."""
    listed = sorted(dep for dep in STAGES[name]["deps"] if dep.startswith("pipeline/"))
    script = REPO / "stages" / f"{name}.py"
    executed = sorted(f"pipeline/{path.relative_to(SOURCE_ROOT).as_posix()}" for path in closure(script))
    assert listed == executed, f"dvc.yaml: the deps of {name} under pipeline/ must be exactly {executed}"


def test_code_deps_keep_the_parts_apart():
    """What the house promises (README, "Design"): the audit reruns nothing, the report's figures
    rerun only the report, a family's download code reruns only download."""
    runs = {name: set(dep for dep in STAGES[name]["deps"] if dep.startswith("pipeline/")) for name in STAGES}
    assert not any("/audit/" in dep for deps in runs.values() for dep in deps)
    assert [name for name, deps in runs.items() if "pipeline/dividemix/report/figures.py" in deps] == ["report"]
    for family in ("cifar", "digits", "folder", "download"):
        assert [name for name, deps in runs.items() if f"pipeline/dividemix/datasets/{family}.py" in deps] == ["download"]
    for part in ("codivide", "mixmatch"):
        assert [name for name, deps in runs.items() if f"pipeline/dividemix/method/{part}.py" in deps] == ["train"]


def test_every_params_yaml_key_is_read_by_some_stage():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = {f"{section}.{key}" for section, values in params.items() for key in values}
    read = {key for stage in STAGES.values() for key in stage.get("params", []) if isinstance(key, str)}
    assert keys - set(RESULT_NEUTRAL) == read and not read & set(RESULT_NEUTRAL)


def test_the_library_layout_is_the_one_dvc_yaml_wires(tmp_path):
    """Paths.layout (tests, benchmarks) names the same files as the stage commands."""
    from dividemix.files.layout import Paths

    commands = " ".join(stage["cmd"] for stage in STAGES.values())
    layout = Paths.layout(tmp_path)
    for field in layout.__dataclass_fields__:
        relative = getattr(layout, field).relative_to(tmp_path).as_posix()
        assert f" {relative} " in f" {commands} ", field


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_command_passes_each_path_its_script_takes(name: str, tmp_path):
    """`--FIELD PATH` for every PATHS entry of the script, PATH the layout's, and nothing else."""
    from dividemix.files.layout import Paths

    module = stage_module(name)
    layout = Paths.layout(tmp_path)
    words = STAGES[name]["cmd"].split()[3:]  # after "exec python stages/NAME.py"
    given = dict(zip(words[::2], words[1::2]))
    expected = {flag(field): getattr(layout, field).relative_to(tmp_path).as_posix() for field in module.PATHS}
    assert given == expected


def test_one_command_rewrites_the_code_deps_from_the_imports(tmp_path):
    """`dividemix deps` puts back every stage's code deps, in place, and touches no other line;
    `--check` reports a drift with exit status 1 and changes nothing."""
    import shutil
    import subprocess
    import sys

    from dividemix.run.code_deps import rewrite_dvc_yaml

    original = (REPO / "dvc.yaml").read_text()
    stripped = "".join(line for line in original.splitlines(keepends=True) if "- pipeline/dividemix/" not in line)
    shifted = original.replace("      - pipeline/dividemix/catalog.py\n", "", 1)  # one stage drifts
    assert shifted != original
    assert rewrite_dvc_yaml(stripped, lambda name: sorted(d for d in STAGES[name]["deps"] if d.startswith("pipeline/"))) \
        == original
    shutil.copytree(REPO / "stages", tmp_path / "stages")
    (tmp_path / "dvc.yaml").write_text(shifted)
    command = [sys.executable, "-m", "dividemix_cli", "deps", "--repo", str(tmp_path)]
    check = subprocess.run([*command, "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "drifted for check" in check.stdout
    assert (tmp_path / "dvc.yaml").read_text() == shifted
    subprocess.run(command, check=True, capture_output=True)
    assert (tmp_path / "dvc.yaml").read_text() == original
