"""The paper's CIFAR tables (Table 1: CIFAR-10/100, symmetric 20-90% and asymmetric 40%) and the
CIFAR-N paper's DivideMix cells (CIFAR-10N aggre, rand1, worst; CIFAR-100N), as presets.

Sources (shared/reference/dividemix.md): hyper-parameters from the paper's appendix table
(lambda_u, p_threshold) and Train_cifar.py; results from the paper's Table 1 (best / mean of the
last 10 epochs) and the CIFAR-N paper (Wei et al., ICLR 2022).
"""

from __future__ import annotations

from typing import Any

from dividemix.config import FOLDER_ONLY
from dividemix.paper.preset import CIFAR_GPU_PATH, FULL_METHOD, Preset

# Train_cifar.py's defaults and the paper's CIFAR schedule (num_epochs 300, lr / 10 at 150, ramp 16).
CIFAR_COMMON: dict[str, Any] = {
    # the folder keys are only read for data.dataset 'folder' (config refuses them otherwise)
    **{f"data.{key}": None for key in FOLDER_ONLY},
    "model.arch": "preact_resnet18",
    "model.pretrained": None,
    "noise.file": None,
    "noise.key": None,
    "train.protocol": "cifar",
    # Train_cifar.py runs `range(num_epochs + 1)`: epochs 0..300, 301 in all (warm-up included), so the
    # last 10 are 291..300 as in its log. train.epochs counts them all.
    "train.epochs": 301,
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


def cifar_presets() -> list[Preset]:
    """Every CIFAR cell of Table 1, then the CIFAR-N cells."""
    presets = [_cifar_preset(dataset, mode, rate) for (dataset, mode, rate) in CIFAR_HYPER]
    return presets + [
        _cifar_n_preset("cifar10n-aggre", "cifar10", "aggre_label", ("cifar10", "sym", 0.2), 95.01, "9.0%"),
        _cifar_n_preset("cifar10n-rand1", "cifar10", "random_label1", ("cifar10", "sym", 0.2), 95.16, "17.2%"),
        _cifar_n_preset("cifar10n-worst", "cifar10", "worse_label", ("cifar10", "sym", 0.5), 92.56, "40.2%"),
        _cifar_n_preset("cifar100n", "cifar100", "noisy_label", ("cifar100", "sym", 0.5), 71.13, "40.2%"),
    ]
