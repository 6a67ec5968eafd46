"""Which library files a module or stage script executes: the closure of its `dividemix` imports.

Read from the source (`ast`), never by importing: every `import dividemix...` and
`from dividemix... import ...` anywhere in a file (inside functions too: a lazy import is still
executed), except those under `if TYPE_CHECKING:`, followed transitively, with the `__init__.py`
of every package on the way (Python runs them on import).

Two users: the test that keeps each stage's code `deps` in dvc.yaml equal to the closure of its
script, and the train checkpoint, which records the digest of the code that made it (a
checkpoint made by other code is not resumed).
"""

from __future__ import annotations

import ast
from pathlib import Path

from dividemix.files.atomic import file_digest

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # pipeline/: holds the dividemix package
PACKAGE = "dividemix"


def module_file(name: str) -> Path | None:
    """The file of module `name` (dividemix.a.b -> pipeline/dividemix/a/b.py or .../b/__init__.py)."""
    base = SOURCE_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST) -> set[str]:
    """Module names a file imports at run time (`from P import m` may name module P.m)."""
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _with_packages(name: str) -> list[str]:
    """`name` and the packages Python imports before it (dividemix, dividemix.a, dividemix.a.b)."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entry: str | Path) -> list[Path]:
    """The library files executed by importing module `entry` (a dotted name) or running script `entry` (a Path)."""
    files: set[Path] = set()
    to_parse = [entry] if isinstance(entry, Path) else []
    names = [] if isinstance(entry, Path) else [entry]
    while names or to_parse:
        for name in names:
            for package_or_module in _with_packages(name):
                path = module_file(package_or_module)
                if path is not None and path not in files:
                    files.add(path)
                    to_parse.append(path)
        names = []
        if to_parse:
            path = to_parse.pop()
            names = sorted(_imported_names(ast.parse(path.read_text(), filename=str(path))))
    return sorted(files)


def code_digest(module: str) -> dict[str, str]:
    """SHA-256 of every library file `module` executes, keyed by its path under pipeline/."""
    return {path.relative_to(SOURCE_ROOT).as_posix(): file_digest(path) for path in closure(module)}


def stage_code_deps(repo: Path, stage: str) -> list[str]:
    """The `pipeline/...` deps stage `stage` must list: the closure of stages/STAGE.py, sorted."""
    script = Path(repo) / "stages" / f"{stage}.py"
    return sorted(f"pipeline/{path.relative_to(SOURCE_ROOT).as_posix()}" for path in closure(script))


def rewrite_dvc_yaml(text: str, deps_of) -> str:
    """`text` (a dvc.yaml) with each stage's `pipeline/` deps replaced by `deps_of(stage)`.

    Line-based, so comments and every other line stay as written: in each stage's `deps:` list the
    existing `pipeline/` entries are dropped and the new ones go where the first of them was (or
    right after the stage's script when it listed none).
    """
    lines, out = text.splitlines(keepends=True), []
    stage, in_deps, placed = None, False, False
    for line in lines:
        stripped, indent = line.strip(), len(line) - len(line.lstrip(" "))
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage, in_deps, placed = stripped[:-1], False, False
        elif indent == 4 and stripped and not stripped.startswith("#"):
            in_deps, placed = stripped == "deps:", False
        if in_deps and stripped.startswith("- pipeline/"):
            if not placed:
                out += [" " * indent + f"- {dep}\n" for dep in deps_of(stage)]
                placed = True
            continue
        out.append(line)
        if in_deps and not placed and stripped == f"- stages/{stage}.py":
            out += [" " * indent + f"- {dep}\n" for dep in deps_of(stage)]
            placed = True
    return "".join(out)


def sync_dvc_yaml(repo: Path, *, write: bool) -> list[str]:
    """The stages whose code deps in REPO/dvc.yaml differ from their imports; with `write`, the
    file is rewritten (atomically) so that none does."""
    import yaml

    from dividemix.files.atomic import write_text_atomic

    path = Path(repo) / "dvc.yaml"
    text = path.read_text()
    stages = yaml.safe_load(text)["stages"]
    wanted = {name: stage_code_deps(repo, name) for name in stages}
    drift = [name for name, stage in stages.items()
             if sorted(d for d in stage.get("deps", []) if d.startswith("pipeline/")) != wanted[name]]
    if drift and write:
        write_text_atomic(path, rewrite_dvc_yaml(text, wanted.__getitem__))
    return drift
