"""Checkpoints: the networks' and optimisers' state, written atomically and byte-reproducibly,
loaded safely, resumed only when made from the same parameters, inputs and code."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from dividemix.datasets.prepared import META
from dividemix.files.atomic import atomic_path, file_digest
from dividemix.files.layout import Paths
from dividemix.run import code_deps

CHECKPOINT_VERSION = 1
# The module whose code closure made a train checkpoint (the train stage's code deps in dvc.yaml).
TRAIN_MODULE = "dividemix.training.train"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a kill never leaves half of one) and byte-reproducibly.

    Serialised to memory first: torch.save on a path names the archive inside after the file,
    and the temporary file's name is random, so the same state would give different bytes.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    # weights_only=True: a checkpoint holds tensors, numbers and strings only, never pickled code.
    return torch.load(path, map_location=device, weights_only=True)


def training_code_digest(module: str = TRAIN_MODULE) -> dict[str, str]:
    """The digest of every library file `module` runs. DVC reruns a stage when one changes; a
    checkpoint made by other code must then not be resumed, or the old code's epochs would be
    kept under the new code's name."""
    return code_deps.code_digest(module)


def fingerprint(params: dict[str, Any], inputs: dict[str, Path | None], module: str) -> dict[str, Any]:
    """What a checkpoint is made from: the stage's parameters, its input files' digests and its
    code (the closure of `module`). A checkpoint is resumed only if all of it is unchanged."""
    digests = {name: file_digest(path) for name, path in inputs.items() if path is not None and path.exists()}
    return {"params": params, **digests, "code": training_code_digest(module)}


def data_inputs(paths: Paths, pretrained: str | None = None) -> dict[str, Path | None]:
    """The prepared data and noisy labels every training stage reads (and `model.pretrained`).

    The images enter through meta.json, which holds their content digests: a 200 GB store is
    never hashed again at each stage's start.
    """
    return {
        "noisy_labels": paths.noisy,
        "meta": paths.prepared / META,
        "pretrained": Path(pretrained) if pretrained else None,
    }


def train_fingerprint(params: dict[str, Any], paths: Paths) -> dict[str, Any]:
    """What a train checkpoint was made from: the data, the warm-up checkpoint, the train code."""
    return fingerprint(params, {**data_inputs(paths), "warmup": paths.warmup_checkpoint}, TRAIN_MODULE)


def clear_epochs(folder: Path, after: int) -> None:
    """Remove per-epoch files of epochs > `after` (left by a killed or an older, different run)."""
    if not folder.exists():
        return
    for file in folder.glob("epoch_*.parquet"):
        if int(file.stem.split("_")[1]) > after:
            file.unlink()


def nets_state(fingerprint: dict, epoch: int, nets: dict, optimizers: dict, extra: dict | None = None) -> dict:
    """A checkpoint of networks and optimisers (keyed by network id) after `epoch`, with `extra`
    entries (the loss history, the best-validation state)."""
    return {
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "nets": {str(i): net.state_dict() for i, net in nets.items()},
        "optimizers": {str(i): optimizer.state_dict() for i, optimizer in optimizers.items()},
        **(extra or {}),
    }


def restore_nets(state: dict[str, Any] | None, nets: dict, optimizers: dict) -> int:
    """Load a checkpoint's networks and optimisers; the first epoch to run after it (0 without one)."""
    if state is None:
        return 0
    for i in nets:
        nets[i].load_state_dict(state["nets"][str(i)])
        optimizers[i].load_state_dict(state["optimizers"][str(i)])
    return int(state["epoch"]) + 1
