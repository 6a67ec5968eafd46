"""Checks before a run: the parameter file as a whole, and what it asks of this machine.

The `check` stage runs them whenever params.yaml changes (its DVC params are the whole file), so
a key no stage reads (a typo: `train.lamda_u`) is refused too, and so is a CUDA device on a
machine without one, before any other stage starts. Every stage validates the whole file again
itself, so a stage run alone (`dvc repro -s train`) refuses the same inputs.
"""

from __future__ import annotations

from pathlib import Path

from dividemix.config import Config, ConfigError


def check_machine(config: Config) -> None:
    """What the parameters need of this machine and workspace: the device, the files they name.

    Raises ConfigError (one line naming the key) for the first thing missing. torch is imported
    only when a CUDA device is asked for (it takes seconds).
    """
    if config.train.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("train.device: 'cuda' but no CUDA device is available here; allowed here: auto, cpu")
    named = {"model.pretrained": config.model.pretrained, "noise.file": config.noise.file}
    data = config.data
    named |= {f"data.{key}": getattr(data, key) for key in ("train_list", "val_list", "test_list", "truth_list")}
    for key, value in named.items():
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"{key}: {value}: file not found")
    if data.root is not None and not Path(data.root).is_dir():
        raise ConfigError(f"data.root: {data.root}: not a folder")
