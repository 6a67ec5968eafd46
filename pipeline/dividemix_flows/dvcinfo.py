"""What DVC knows: the stages of dvc.yaml in dependency order, and whether one is up to date.

The graph is DVC's own (its index, built from dvc.yaml's deps and outs), so there is no second,
hand-written copy of the pipeline here.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _repo(path: str | Path):
    """DVC's Repo, without the DeprecationWarnings its index raises from a dependency (pygtrie)."""
    from dvc.repo import Repo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with Repo(str(path)) as repo:
            yield repo


def stage_order(repo: str | Path) -> list[str]:
    """The pipeline stages, every stage after the stages it depends on.

    Ties keep dvc.yaml's declaration order, so the order is stable from run to run.
    """
    import networkx as nx
    from dvc.stage import PipelineStage

    with _repo(repo) as dvc_repo:
        stages = [stage for stage in dvc_repo.index.stages if isinstance(stage, PipelineStage)]
        position = {stage: index for index, stage in enumerate(stages)}
        # DVC's edges point from a stage to the stages it depends on.
        graph = dvc_repo.index.graph.subgraph(stages).reverse(copy=True)
        ordered = nx.lexicographical_topological_sort(graph, key=lambda stage: position[stage])
        return [_address(stage, Path(dvc_repo.root_dir)) for stage in ordered]


def _address(stage, root: Path) -> str:
    """The stage as `dvc repro` names it from the repository root: "train", or "sub/dvc.yaml:train"."""
    dvcfile = Path(stage.path).relative_to(root)
    return stage.name if dvcfile == Path("dvc.yaml") else f"{dvcfile}:{stage.name}"


def stage_changes(repo: str | Path, stage: str) -> list:
    """What DVC says changed for `stage` alone (`dvc status STAGE`); empty: up to date.

    Only this stage is checked, not its upstream ones: the flow asks in dependency order, after
    the upstream stages have run, so a changed input shows up here as a changed dep.
    """
    with _repo(repo) as dvc_repo:
        # An absolute target: DVC resolves relative ones against the working directory.
        dvcfile, _, name = stage.rpartition(":")
        target = f"{Path(dvc_repo.root_dir) / (dvcfile or 'dvc.yaml')}:{name}"
        status = dvc_repo.status(targets=[target])
    return [change for changes in status.values() for change in changes]


def describe_changes(changes: list) -> str:
    """One line from `dvc status` entries, e.g. "changed deps: data/noisy/labels.parquet (modified)"."""
    parts = []
    for change in changes:
        if isinstance(change, dict):
            for kind, items in change.items():
                if isinstance(items, dict):
                    listed = ", ".join(f"{path} ({what})" for path, what in items.items())
                    parts.append(f"{kind}: {listed}")
                else:
                    parts.append(f"{kind}: {items}")
        else:
            parts.append(str(change))
    return "; ".join(parts) or "changed"
