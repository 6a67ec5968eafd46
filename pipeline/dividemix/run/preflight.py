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
        processes = config.distributed.processes_per_machine
        if processes > torch.cuda.device_count():
            raise ConfigError(f"distributed.processes_per_machine: {processes} processes on the GPU, but this machine "
                              f"has {torch.cuda.device_count()} CUDA device(s); allowed here: 1..{torch.cuda.device_count()}")
    named = {"model.pretrained": config.model.pretrained, "noise.file": config.noise.file}
    data = config.data
    named |= {f"data.{key}": getattr(data, key) for key in
              ("train_list", "val_list", "test_list", "test2_list", "truth_list")}
    for key, value in named.items():
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"{key}: {value}: file not found")
    for key in ("root", "imagenet_val"):
        value = getattr(data, key)
        if value is not None and not Path(value).is_dir():
            raise ConfigError(f"data.{key}: {value}: not a folder")
