"""A training stage's progress, kept where DVC never looks, so that a stopped run resumes whatever
DVC did to the outputs meanwhile.

DVC does not delete a training stage's outputs before running it (`persist: true` in dvc.yaml),
but `dvc exp run` first checks out the committed outputs (a forced `dvc checkout`), which
replaces a stopped run's files in the workspace. So each training stage also keeps its checkpoint
and the per-epoch files it has written in a folder of its own (`Paths.resume / STAGE`, under
`.dividemix/resume/`, ignored by git and DVC), as hard links to the files it writes: no extra
disk while both exist. A stage resumes from that folder when the checkpoint kept there was made
from the same parameters, inputs and code (its fingerprint), puts the files back, and removes the
folder once it has finished.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dividemix.files import artifacts
from dividemix.files.atomic import atomic_path
from dividemix.training.checkpoint import CHECKPOINT_VERSION, clear_epochs, load_checkpoint, save_checkpoint

STATE = "state.pt"


def link_or_copy(source: Path, dest: Path) -> None:
    """`dest` becomes `source`'s content: a hard link when the file system allows, else a copy;
    replaced atomically (a reader sees the old file or the new one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(source, tmp)


class Resume:
    """One stage's kept progress: `state.pt` (its checkpoint) and the files it wrote, by name."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any]):
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    def load(self, device: torch.device) -> dict[str, Any] | None:
        """The kept checkpoint, if there is one made from the same fingerprint; else None (and the
        folder is emptied: what is there belongs to another run)."""
        path = self.folder / STATE
        if path.exists():
            state = load_checkpoint(path, device)
            if state.get("version") == CHECKPOINT_VERSION and state.get("fingerprint") == self.fingerprint:
                return state
        self.clear()
        return None

    def keep(self, path: Path, name: str) -> None:
        """Keep the written file `path` as `name` (e.g. "divisions/epoch_012.parquet")."""
        link_or_copy(path, self.folder / name)

    def keep_state(self, path: Path) -> None:
        """Keep the checkpoint just written at `path`; written last, it commits the epoch."""
        link_or_copy(path, self.folder / STATE)

    def save_state(self, state: dict[str, Any]) -> None:
        """A checkpoint that only this folder holds (a stage whose outputs are written at its end)."""
        save_checkpoint(self.folder / STATE, state)

    def keep_rows(self, name: str, epoch: int, schema: str, columns: dict, meta: dict) -> None:
        """One epoch's rows of artifact `schema`, kept as `name`/epoch_XXX.parquet until the stage ends."""
        artifacts.write_table(artifacts.epoch_file(self.folder / name, epoch), schema, columns, meta)

    def kept_rows(self, name: str, after: int) -> pa.Table:
        """Every kept epoch's rows of `name`, in epoch order, once the files of epochs > `after`
        (written by a run stopped before its checkpoint) are dropped."""
        clear_epochs(self.folder / name, after)
        files = [self.folder / kept for kept in self.kept(name)]
        return pa.concat_tables(pq.read_table(file) for file in files).replace_schema_metadata(None)

    def kept_records(self, name: str, after: int) -> list[dict]:
        """The kept rows of `name` up to epoch `after`, as records (none kept: an empty list)."""
        clear_epochs(self.folder / name, after)
        return [record for kept in self.kept(name) for record in pq.read_table(self.folder / kept).to_pylist()]

    def kept(self, prefix: str) -> list[str]:
        """The names of the files kept under `prefix` (a folder name), sorted."""
        folder = self.folder / prefix
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}/{path.name}" for path in folder.iterdir() if not path.name.startswith("."))

    def path(self, name: str) -> Path:
        return self.folder / name

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
