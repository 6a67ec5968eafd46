"""The walls of the house (README, "Design: the house"), read from the imports of every module.

Each part may import only what the README's table allows; these tests read the source (`ast`)
and, for torch, what a real import loads, so a new import across a wall fails here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from dividemix import catalog
from dividemix.run.code_deps import SOURCE_ROOT, closure

LIBRARY = SOURCE_ROOT / "dividemix"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
LONG_ON_PURPOSE = "Long on purpose:"  # a docstring that says why a module or function is longer


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module name a file imports (`from a import b` counts a and a.b)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imports_any(path: Path, prefixes: tuple[str, ...], **kwargs) -> list[str]:
    return sorted(n for n in imports(path, **kwargs) if any(n == p or n.startswith(p + ".") for p in prefixes))


ORCHESTRATION = ("prefect", "prefect_dask", "dask", "distributed", "dividemix_flows", "dividemix_cli")
TRAINING_INTERNALS = ("torch", "dividemix.training", "dividemix.method.codivide", "dividemix.method.mixmatch", "dividemix.method.models",
                      "dividemix.method.inference", "dividemix.images.batches", "dividemix.images.transforms")


@pytest.mark.parametrize("path", python_files(REPO / "stages"), ids=lambda p: p.name)
def test_a_stage_imports_no_orchestration_and_no_other_stage(path: Path):
    assert imports_any(path, ORCHESTRATION) == []
    assert [n for n in imports(path) if n.split(".")[0] in {p.stem for p in (REPO / "stages").glob("*.py")}] == []


@pytest.mark.parametrize("path", python_files(LIBRARY), ids=module_name)
def test_the_library_never_imports_orchestration_and_reads_argv_in_stage_only(path: Path):
    assert imports_any(path, ORCHESTRATION) == []
    if module_name(path) != "dividemix.run.stage":
        assert imports_any(path, ("argparse",)) == [] and "sys.argv" not in path.read_text()
    if module_name(path) != "dividemix.audit.sources":  # the audit reads revisions through DVC
        assert imports_any(path, ("dvc",)) == []
    if module_name(path) != "dividemix.run.live":  # DVC's logger, behind one small adapter
        assert imports_any(path, ("dvclive",)) == []


TRUTH_NAMES = {"load_train_truth", "TRAIN_TRUTH", "known_clean_mask", "read_truth_mask", "truth_of", "verified_subset"}


@pytest.mark.parametrize("stage", ["warmup", "baseline", "train"])
def test_training_never_names_the_truth(stage: str):
    """No module a training stage executes names the true labels (prepared.py defines them)."""
    for path in closure(REPO / "stages" / f"{stage}.py"):
        if module_name(path) in ("dividemix.datasets.prepared", "dividemix.files.layout"):  # they define the names
            continue
        names = {node.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
        names |= {alias.name for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not names & TRUTH_NAMES, (module_name(path), names & TRUTH_NAMES)


@pytest.mark.parametrize("path", python_files(SOURCE_ROOT / "dividemix_flows"), ids=module_name)
def test_the_flows_orchestrate_and_never_train(path: Path):
    assert imports_any(path, TRAINING_INTERNALS) == []


@pytest.mark.parametrize("path", python_files(SOURCE_ROOT / "dividemix_cli"), ids=module_name)
def test_the_command_line_never_imports_training_internals(path: Path):
    assert imports_any(path, TRAINING_INTERNALS) == []


@pytest.mark.parametrize("path", python_files(LIBRARY / "audit"), ids=module_name)
def test_the_audit_reads_artifacts_and_only_export_loads_networks(path: Path):
    """Only audit.export touches torch and the training code, and only inside a function."""
    assert imports_any(path, TRAINING_INTERNALS, top_level_only=True) == []
    if module_name(path) != "dividemix.audit.export":
        assert imports_any(path, TRAINING_INTERNALS) == []


def test_the_flows_and_the_audit_load_no_torch():
    """What a real import loads (transitively): the flows and the diff never import torch."""
    modules = ["dividemix_flows.pipeline", "dividemix_flows.sweep", "dividemix_flows.grid", "dividemix_cli",
               "dividemix.audit.diff", "dividemix.audit.pages", "dividemix.audit.trace", "dividemix.config"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def readme_map() -> dict[str, tuple[str, set[str]]]:
    """The README's map of the library: part -> (where, the parts it may import)."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| part | where |"):].split("\n\n")[0]
    parts = {}
    for row in table.splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        where = cells[1].strip("`")
        if where.startswith("dividemix/"):
            parts[cells[0].strip("`")] = (where, set(re.findall(r"`(\w+)`", cells[3])))
    return parts


def part_of(module: str) -> str:
    """The part a library module belongs to: dividemix.method.codivide -> method."""
    return module.split(".")[1] if module.count(".") else module


def test_the_folders_are_the_readme_map():
    """`ls pipeline/dividemix` is the map: every folder and top module a part the README names, and
    every part there; each folder a package whose docstring says what it may import."""
    parts = readme_map()
    found = {path.stem if path.is_file() else path.name: path for path in LIBRARY.iterdir()
             if path.name not in ("__init__.py", "__pycache__") and (path.is_dir() or path.suffix == ".py")}
    assert sorted(found) == sorted(parts)
    for name, (where, _) in parts.items():
        assert (SOURCE_ROOT / where.rstrip("/")).exists() if where.endswith("/") else (SOURCE_ROOT / where).is_file()
        if found[name].is_dir():
            doc = ast.get_docstring(ast.parse((found[name] / "__init__.py").read_text())) or ""
            assert "May import" in doc or "may import" in doc, name


@pytest.mark.parametrize("path", python_files(LIBRARY), ids=module_name)
def test_each_part_imports_only_what_the_map_allows(path: Path):
    parts = readme_map()
    own = part_of(module_name(path))
    if own == "dividemix":  # the package's own __init__
        return
    allowed = parts[own][1] | {own}
    used = {part_of(name) for name in imports(path) if name.startswith("dividemix.")}
    assert used <= allowed, f"{module_name(path)} imports {sorted(used - allowed)}; the map allows {sorted(allowed)}"


def test_the_library_has_no_import_cycle():
    graph = {}
    for path in python_files(LIBRARY):
        own = module_name(path)
        graph[own] = {n for n in imports(path, top_level_only=True) if n.startswith("dividemix") and n != own}
    known = set(graph)
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(n for n in graph[node] if n in known):
            if state.get(nxt) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(trail + [node, nxt])}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def _source_files() -> list[Path]:
    return python_files(SOURCE_ROOT) + python_files(REPO / "stages")


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_modules_and_functions_stay_small_or_say_why(path: Path):
    tree = ast.parse(path.read_text())
    lines = len(path.read_text().splitlines())
    if lines > MAX_MODULE_LINES:
        assert LONG_ON_PURPOSE in (ast.get_docstring(tree) or ""), f"{lines} lines"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) else node.body  # the code, not its docstring
            length = node.end_lineno - body[0].lineno + 1 if body else 0
            if length > MAX_FUNCTION_LINES:
                assert LONG_ON_PURPOSE in (ast.get_docstring(node) or ""), f"{node.name}: {length} lines"


@pytest.mark.parametrize("path", python_files(REPO / "benchmarks"), ids=lambda p: p.name)
def test_benchmarks_print_figures_and_assert_nothing(path: Path):
    assert not [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]


def test_the_catalog_names_what_the_registries_implement():
    """config validates against the catalog; the data sets and models must be exactly those."""
    from dividemix.datasets.registry import SPECS
    from dividemix.method.models import MODELS

    assert list(SPECS) == list(catalog.DATASETS)
    assert sorted(MODELS) == sorted(catalog.MODELS)
    for name, spec in SPECS.items():
        facts = catalog.DATASETS[name]
        assert facts.asym == (spec.asym_map is not None), name
        assert facts.downloads == bool(getattr(spec, "url", "")), name
        assert facts.stored == (spec.crop_size > 0 or name == "folder"), name  # decoded into the store
        assert facts.lists == (name == "folder"), name
