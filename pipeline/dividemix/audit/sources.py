"""Where a run's files are: a folder on disk, or a git revision or DVC experiment read through DVC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dividemix.files import layout

ARTIFACTS = layout.ARTIFACTS
DIVISIONS = layout.DIVISIONS
TRUTH = layout.TRAIN_TRUTH
NOISY = layout.NOISY_LABELS
CHECKPOINT = layout.TRAIN_CHECKPOINT


class AuditError(ValueError):
    """A source cannot be read or two runs cannot be compared (message: one line)."""


# ------------------------------------------------------------------------------------ sources
@dataclass
class RunSource:
    """Where one run's files are: a local pipeline root, or a revision read through DVC.

    `root` is the pipeline root (holding artifacts/ and data/) on `fs`; `fs` is None for a local
    folder, else a `dvc.api.DVCFileSystem` at the revision.
    """

    name: str  # as the user wrote it
    root: str
    fs: Any = None
    artifacts_dir: str = ARTIFACTS  # relative to root
    has_data: bool = True  # whether data/ is expected beside the artifacts

    def path(self, relative: str) -> str:
        if relative.startswith(ARTIFACTS + "/") or relative == ARTIFACTS:
            relative = self.artifacts_dir + relative[len(ARTIFACTS):]
        return str(Path(self.root) / relative) if self.fs is None else f"{self.root}/{relative}".lstrip("/")

    def where(self, relative: str) -> str:
        """A file as an error names it: its path, and the revision when it is read from one."""
        return self.path(relative) if self.fs is None else f"{self.name}:{self.path(relative)}"

    def exists(self, relative: str) -> bool:
        if relative.startswith("data/") and not self.has_data:
            return False
        path = self.path(relative)
        if self.fs is None:
            return Path(path).exists()
        with self.reading(relative):
            return bool(self.fs.exists(path))

    def listdir(self, relative: str) -> list[str]:
        path = self.path(relative)
        if self.fs is None:
            return sorted(p.name for p in Path(path).iterdir())
        with self.reading(relative):
            return sorted(Path(p).name for p in self.fs.ls(path, detail=False))

    @contextmanager
    def open(self, relative: str) -> Iterator[Any]:
        """A path (local) or an open binary file (revision) that pyarrow and numpy can read."""
        path = self.path(relative)
        if self.fs is None:
            yield path
        else:
            with self.reading(relative), self.fs.open(path, "rb") as handle:
                yield handle

    @contextmanager
    def reading(self, relative: str) -> Iterator[None]:
        """DVC's errors while reading a revision's file, as one line saying what to do.

        A revision's DVC-tracked files come from the local DVC cache; in a fresh clone (no
        `dvc pull` yet, or no remote) they are not there, and DVC raises one of many internal
        errors (DataIndexDirError, FileNotFoundError...).
        """
        try:
            yield
        except AuditError:
            raise
        except Exception as exc:  # noqa: BLE001 - dvc's errors have no common base worth naming
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise AuditError(
                f"{self.name}: cannot read {relative} from the DVC cache ({reason}); fetch it with `dvc pull` "
                f"(a commit) or `dvc exp pull REMOTE {self.name}` (an experiment), or reproduce that revision"
            ) from None


def open_source(spec: str, *, repo: str | Path = ".") -> RunSource:
    """A run from a folder (a pipeline root or its artifacts/ folder), a git revision or an experiment.

    A folder wins over a revision of the same name. Revisions and experiments are resolved in the
    git + DVC repository `repo`.
    """
    folder = Path(spec)
    if folder.is_dir():
        if (folder / DIVISIONS).is_dir():
            return RunSource(spec, str(folder))
        if (folder / "divisions").is_dir():  # the artifacts folder itself; data/ is its sibling
            return RunSource(spec, str(folder.parent), artifacts_dir=folder.name, has_data=folder.name == ARTIFACTS)
        raise AuditError(f"{spec}: a folder without {DIVISIONS}/ (nor divisions/); is it a pipeline run?")
    return _revision_source(spec, repo)


def _revision_source(rev: str, repo: str | Path) -> RunSource:
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(str(repo), rev=rev)
        has_divisions = fs.isdir(DIVISIONS)  # opens the repository and resolves the revision
    except Exception as exc:  # dvc raises many kinds: NotDvcRepoError, RevError, SCMError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditError(
            f"{rev}: no such run folder, and not a git revision or DVC experiment of {Path(repo).resolve()} ({reason})"
        ) from None
    if not has_divisions:
        raise AuditError(f"{rev}: the revision has no {DIVISIONS}/ (not committed, or no run there)")
    return RunSource(rev, "", fs=fs)
