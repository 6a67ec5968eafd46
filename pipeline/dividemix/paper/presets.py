"""The paper's settings as named presets: dotted parameter overrides plus the paper's number.

Every cell of the paper's CIFAR tables (CIFAR-10 sym 20/50/80/90 and asym 40, CIFAR-100 sym
20/50/80/90), CIFAR-10N (aggre, rand1, worst), CIFAR-100N, Clothing1M and WebVision. A preset is
applied over `params.yaml` (`dividemix preset apply NAME`) or queued as a DVC experiment
(`dividemix preset queue --table cifar`); `paper_result(config)` finds the cell a run belongs to,
so the report can print the paper's number beside the run's own.

Sources (shared/reference/dividemix.md): hyper-parameters from the paper's appendix table
(lambda_u, p_threshold) and the official training scripts (Train_cifar.py, Train_Clothing1M.py,
Train_webvision.py); results from the paper's Table 1 (best / mean of the last 10 epochs),
Tables 3-4 (Clothing1M, WebVision) and the CIFAR-N paper (Wei et al., ICLR 2022).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dividemix.config import FOLDER_ONLY, Config, parse_config

# What every paper run of DivideMix shares: the full method (no ablation) on the GPU path.
FULL_METHOD = {f"ablation.{key}": True for key in
               ("co_divide", "label_refinement", "co_guessing", "augmentation", "ensemble_test")}
# Large images (ResNet-50 at 224 px, Inception-ResNet-v2 at 299 px): arithmetic dominates, bf16 pays.
GPU_PATH = {"train.amp": True, "train.channels_last": True}
# PreAct ResNet-18 at 32x32, B = 64: the step is bound by kernel launches; measured on an H200
# (docs/paper-scale.md), bf16 autocast slowed the isolated step (25.2 vs 18.3 ms with channels-last)
# and left the whole epoch unchanged (~22 s): so the reference's fp32.
CIFAR_GPU_PATH = {"train.amp": False, "train.channels_last": True}

# Train_cifar.py's defaults and the paper's CIFAR schedule (300 epochs, lr / 10 at 150, ramp 16).
CIFAR_COMMON: dict[str, Any] = {
    # the folder keys are only read for data.dataset 'folder' (config refuses them otherwise)
    **{f"data.{key}": None for key in FOLDER_ONLY},
    "model.arch": "preact_resnet18",
    "model.pretrained": None,
    "noise.file": None,
    "noise.key": None,
    "train.protocol": "cifar",
    "train.epochs": 300,  # the official loop runs 0..300 inclusive; here 300 epochs in all
    "train.lr": 0.02,
    "train.lr_drop_epoch": 150,
    "train.momentum": 0.9,
    "train.weight_decay": 0.0005,
    "train.batch_size": 64,
    "train.alpha": 4.0,
    "train.T": 0.5,
    "train.rampup_epochs": 16,
    **CIFAR_GPU_PATH,
    **FULL_METHOD,
}
WARMUP = {"cifar10": 10, "cifar100": 30}  # Train_cifar.py: warm_up 10 (CIFAR-10), 30 (CIFAR-100)

# The paper's appendix: (lambda_u, p_threshold) per CIFAR cell.
CIFAR_HYPER = {
    ("cifar10", "sym", 0.2): (0.0, 0.5),
    ("cifar10", "sym", 0.5): (25.0, 0.5),
    ("cifar10", "sym", 0.8): (25.0, 0.5),
    ("cifar10", "sym", 0.9): (50.0, 0.6),
    ("cifar10", "asym", 0.4): (0.0, 0.5),
    ("cifar100", "sym", 0.2): (25.0, 0.5),
    ("cifar100", "sym", 0.5): (150.0, 0.5),
    ("cifar100", "sym", 0.8): (150.0, 0.5),
    ("cifar100", "sym", 0.9): (150.0, 0.6),
}
# The paper's Table 1: (best, mean of the last 10 epochs), percent.
CIFAR_RESULTS = {
    ("cifar10", "sym", 0.2): (96.1, 95.7),
    ("cifar10", "sym", 0.5): (94.6, 94.4),
    ("cifar10", "sym", 0.8): (93.2, 92.9),
    ("cifar10", "sym", 0.9): (76.0, 75.4),
    ("cifar10", "asym", 0.4): (93.4, 92.1),
    ("cifar100", "sym", 0.2): (77.3, 76.9),
    ("cifar100", "sym", 0.5): (74.6, 74.2),
    ("cifar100", "sym", 0.8): (60.2, 59.6),
    ("cifar100", "sym", 0.9): (31.5, 31.0),
}

CIFAR10N_FILE = "labels/CIFAR-10_human.pt"
CIFAR_N_NETWORK = "ResNet-34 (the CIFAR-N paper's network for every method)"
CIFAR100N_FILE = "labels/CIFAR-100_human.pt"


@dataclass(frozen=True)
class Preset:
    name: str
    table: str  # cifar | cifar-n | clothing1m | webvision: the group `preset queue --table` takes
    description: str
    overrides: dict[str, Any]  # dotted key -> value, applied over params.yaml
    paper_best: float | None  # percent; the paper's best-epoch accuracy (or its only number)
    paper_last: float | None  # percent; mean of the last 10 epochs, where the paper gives it
    notes: tuple[str, ...] = field(default=())  # what the user must provide, departures, sources
    # The network behind the paper's figure when it is not this preset's model (CIFAR-N: the
    # CIFAR-N paper benchmarked every method with a ResNet-34), so no one compares across them unawares.
    paper_network: str | None = None

    def __post_init__(self) -> None:
        # Keys in params.yaml's section order (data, noise, model, train, ablation): for reading.
        order = {section: i for i, section in enumerate(Config.model_fields)}
        ordered = dict(sorted(self.overrides.items(), key=lambda item: order[item[0].split(".")[0]]))
        object.__setattr__(self, "overrides", ordered)

    def match_keys(self) -> tuple[str, ...]:
        """The keys that define the paper's cell (the data and its noise), not the hyper-parameters."""
        if self.overrides["noise.mode"] == "file":
            return ("data.dataset", "noise.mode", "noise.file", "noise.key", "train.protocol")
        if self.overrides["data.dataset"] == "folder":  # Clothing1M and WebVision: told apart by the model
            return ("data.dataset", "noise.mode", "train.protocol", "model.arch")
        return ("data.dataset", "noise.mode", "noise.rate", "train.protocol")


def _cifar_preset(dataset: str, mode: str, rate: float) -> Preset:
    lambda_u, p_threshold = CIFAR_HYPER[(dataset, mode, rate)]
    best, last = CIFAR_RESULTS[(dataset, mode, rate)]
    name = f"{dataset}-{mode}{round(rate * 100)}"
    overrides = {
        "data.dataset": dataset,
        "noise.mode": mode,
        "noise.rate": rate,
        **CIFAR_COMMON,
        "train.warmup_epochs": WARMUP[dataset],
        "train.lambda_u": lambda_u,
        "train.p_threshold": p_threshold,
        # Train_cifar.py switches these by the noise's name; here they are explicit parameters.
        "train.conf_penalty": mode == "asym",
        "train.loss_history": 5 if rate == 0.9 else 1,
    }
    description = (f"{dataset.upper().replace('CIFAR', 'CIFAR-')} {'symmetric' if mode == 'sym' else 'asymmetric'} "
                   f"noise {round(rate * 100)}%: paper Table 1")
    return Preset(name, "cifar", description, overrides, best, last)


def _cifar_n_preset(name: str, dataset: str, key: str, closest: tuple[str, str, float], best: float,
                    noise_rate: str) -> Preset:
    lambda_u, p_threshold = CIFAR_HYPER[closest]
    file = CIFAR10N_FILE if dataset == "cifar10" else CIFAR100N_FILE
    overrides = {
        "data.dataset": dataset,
        "noise.mode": "file",
        **CIFAR_COMMON,
        "noise.file": file,
        "noise.key": key,
        "train.warmup_epochs": WARMUP[dataset],
        "train.lambda_u": lambda_u,
        "train.p_threshold": p_threshold,
        "train.conf_penalty": False,
        "train.loss_history": 1,
    }
    cell = f"{closest[0]}-{closest[1]}{round(closest[2] * 100)}"
    notes = (
        f"labels: {file} (the CIFAR-N release, CC BY-NC 4.0; fetch it yourself), key {key}",
        f"hyper-parameters: those of the closest paper cell, {cell} (lambda_u {lambda_u:g}, p_threshold "
        f"{p_threshold:g}); the CIFAR-N paper's own DivideMix settings are not recorded here",
        "result: the CIFAR-N paper's DivideMix number (its one figure per cell; no 'last' given), "
        "obtained with a ResNet-34, not this preset's PreAct ResNet-18",
    )
    label = "CIFAR-10N" if dataset == "cifar10" else "CIFAR-100N"
    description = f"{label} {key} (human labels, {noise_rate} wrong): CIFAR-N paper"
    return Preset(name, "cifar-n", description, overrides, best, None, notes, paper_network=CIFAR_N_NETWORK)


# Left to the user: where their copy is (`dividemix preset apply NAME --set data.root=... ...`).
FOLDER_USER_KEYS = ("data.root", "data.train_list", "data.val_list", "data.test_list")
FOLDER_NOTES = (f"data: give your copy's {', '.join(FOLDER_USER_KEYS)}, e.g. `dividemix preset apply NAME "
                "--set data.root=/data/x --set data.train_list=train.txt ...`",)

CLOTHING1M = Preset(
    "clothing1m", "clothing1m", "Clothing1M (14 classes, real noise): paper Table 3",
    {
        "data.dataset": "folder",
        # dataloader_clothing1M.py: Resize(256), RandomCrop(224) + flip / CenterCrop(224), its constants
        "data.image_size": 224, "data.resize": 256, "data.train_crop": "random",
        "data.mean": [0.6959, 0.6537, 0.6371],
        "data.std": [0.3113, 0.3192, 0.3214],
        "data.truth_list": None, "noise.mode": "none",  # the training list's labels are the noisy ones
        "noise.file": None, "noise.key": None,
        "model.arch": "resnet50",
        "model.pretrained": "weights/resnet50-0676ba61.pth",
        "train.protocol": "clothing1m",
        "train.num_batches": 1000,
        "train.epochs": 80,  # the official loop runs 0..80 inclusive; here 80 epochs in all
        "train.warmup_epochs": 1,
        "train.lr": 0.002,
        "train.lr_drop_epoch": 40,
        "train.momentum": 0.9,
        "train.weight_decay": 0.001,
        "train.batch_size": 32,
        "train.alpha": 0.5,
        "train.T": 0.5,
        "train.lambda_u": 0.0,
        "train.p_threshold": 0.5,
        "train.rampup_epochs": 16,  # unused: lambda_u is 0
        "train.conf_penalty": True,  # Train_Clothing1M's warm-up adds the confidence penalty
        "train.loss_history": 1,
        **GPU_PATH,
        **FULL_METHOD,
    },
    74.76, None,
    FOLDER_NOTES + (
        "model.pretrained: torchvision's ImageNet ResNet-50 weights (IMAGENET1K_V1, resnet50-0676ba61.pth), "
        "placed there by you; nothing is downloaded",
        "result: test accuracy of the best-validation checkpoints of both networks, ensembled",
    ),
)

WEBVISION = Preset(
    "webvision", "webvision", "WebVision 1.0, first 50 classes (Google subset): paper Table 4",
    {
        "data.dataset": "folder",
        # dataloader_webvision.py: Resize(320), RandomResizedCrop(299) + flip / CenterCrop(299), ImageNet's
        "data.image_size": 299, "data.resize": 320, "data.train_crop": "random_resized",
        "data.mean": [0.485, 0.456, 0.406],
        "data.std": [0.229, 0.224, 0.225],
        "data.truth_list": None, "noise.mode": "none",
        "noise.file": None,
        "noise.key": None,
        "model.arch": "inception_resnet_v2",
        "model.pretrained": None,  # from scratch
        "train.protocol": "clothing1m",
        # The reference passes over all ~66k training images each epoch (no class balancing);
        # the clothing1m protocol samples num_batches x batch_size, so about as many images.
        "train.num_batches": 2060,
        "train.epochs": 80,  # as Clothing1M: 80 epochs in all (the reference runs 81)
        "train.warmup_epochs": 1,
        "train.lr": 0.01,
        "train.lr_drop_epoch": 40,
        "train.momentum": 0.9,
        "train.weight_decay": 0.0005,
        "train.batch_size": 32,
        "train.alpha": 0.5,
        "train.T": 0.5,
        "train.lambda_u": 0.0,
        "train.p_threshold": 0.5,
        "train.rampup_epochs": 16,  # unused: lambda_u is 0
        "train.conf_penalty": False,  # commented out in Train_webvision's warm-up
        "train.loss_history": 1,
        **GPU_PATH,
        **FULL_METHOD,
    },
    77.32, None,
    FOLDER_NOTES + (
        "departure: the reference trains on the whole training set each epoch and tests every epoch; the "
        "clothing1m protocol samples a class-balanced num_batches x batch_size and tests the best-validation "
        "weights",
        "result: WebVision validation top-1 (top-5 91.64; ILSVRC12 same classes 75.20 / 90.84)",
    ),
)


def _all_presets() -> dict[str, Preset]:
    presets = [_cifar_preset(dataset, mode, rate) for (dataset, mode, rate) in CIFAR_HYPER]
    presets += [
        _cifar_n_preset("cifar10n-aggre", "cifar10", "aggre_label", ("cifar10", "sym", 0.2), 95.01, "9.0%"),
        _cifar_n_preset("cifar10n-rand1", "cifar10", "random_label1", ("cifar10", "sym", 0.2), 95.16, "17.2%"),
        _cifar_n_preset("cifar10n-worst", "cifar10", "worse_label", ("cifar10", "sym", 0.5), 92.56, "40.2%"),
        _cifar_n_preset("cifar100n", "cifar100", "noisy_label", ("cifar100", "sym", 0.5), 71.13, "40.2%"),
        CLOTHING1M,
        WEBVISION,
    ]
    return {preset.name: preset for preset in presets}


PRESETS: dict[str, Preset] = _all_presets()
TABLES: tuple[str, ...] = tuple(dict.fromkeys(preset.table for preset in PRESETS.values()))


def get_preset(name: str) -> Preset:
    """The preset `name`; an unknown name raises ValueError listing the allowed ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


def presets_in_table(table: str) -> list[Preset]:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; allowed: {', '.join(TABLES)}")
    return [preset for preset in PRESETS.values() if preset.table == table]


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the nested params mapping `raw` with the dotted `overrides` set."""
    out = copy.deepcopy(raw) if raw else {}
    for key, value in overrides.items():
        section, name = key.split(".")
        if out.get(section) is None:  # absent, or an empty section (`ablation:` alone in YAML)
            out[section] = {}
        if not isinstance(out[section], dict):
            raise ValueError(f"{section}: expected a section of keys, got {out[section]!r}")
        out[section][name] = value
    return out


def preset_config(raw: dict[str, Any], name: str) -> Config:
    """`raw` (a params mapping) with preset `name` applied, validated (ConfigError when invalid)."""
    return parse_config(apply_overrides(raw, get_preset(name).overrides), source=f"preset {name}")


def _same(key: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if key == "noise.file":  # the same release wherever it is kept
        return Path(str(a)).name == Path(str(b)).name
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9)
    return a == b


def _value(config: Config | dict[str, Any], key: str) -> Any:
    section, name = key.split(".")
    if isinstance(config, Config):
        return getattr(getattr(config, section), name)
    return config[key]


def find_preset(config: Config | dict[str, Any]) -> Preset | None:
    """The preset whose paper cell the run's setting (data set, noise, protocol) is, if any.

    `config` is a `Config` or a mapping of dotted keys (as `config.select` gives) holding at least
    the keys of `CELL_KEYS`.
    """
    for preset in PRESETS.values():
        if all(_same(key, _value(config, key), preset.overrides[key]) for key in preset.match_keys()):
            return preset
    return None


# Every key `find_preset` may read (the report stage declares them as its params).
CELL_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for p in PRESETS.values() for key in p.match_keys()))


def paper_result(config: Config | dict[str, Any]) -> tuple[str, float | None, float | None] | None:
    """(preset name, paper best %, paper last %) of the run's cell; None when the paper has no such cell."""
    preset = find_preset(config)
    if preset is None:
        return None
    return preset.name, preset.paper_best, preset.paper_last


def preset_differences(config: Config | dict[str, Any], name: str) -> list[tuple[str, Any, Any]]:
    """(key, run's value, preset's value) where the run departs from preset `name`.

    With a mapping of dotted keys, only the preset's keys present in it are compared.
    """
    keys = [key for key in get_preset(name).overrides if isinstance(config, Config) or key in config]
    preset = get_preset(name).overrides
    return [(key, _value(config, key), preset[key]) for key in keys if not _same(key, _value(config, key), preset[key])]
