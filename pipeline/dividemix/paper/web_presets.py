"""The paper's web-label tables as presets: Clothing1M (Table 2) and mini-WebVision (Table 3).

Hyper-parameters from Train_clothing1M.py and Train_webvision.py; the data sets are read as
published (`data.dataset: clothing1m | webvision`, docs/web-datasets.md). Each published number is
a `PaperFigure` that says how it was measured, so the report and `dividemix table` compare it with
the run's figure of the same protocol. Sources: shared/reference/web-datasets.md (section 5).
"""

from __future__ import annotations

from dividemix.config import FOLDER_ONLY
from dividemix.paper.preset import FULL_METHOD, GPU_PATH, PaperFigure, Preset

# Left to the user: where their copy is (`dividemix preset apply NAME --set data.root=...`).
WEB_NOTES = ("data: give your copy's data.root (the data set as downloaded and unpacked), e.g. `dividemix preset "
             "apply NAME --set data.root=/data/clothing1M`; one already in params.yaml is kept; "
             "docs/web-datasets.md shows the folder",)
# The reference's transforms are the data set's own (datasets/folder.py): null. The locations the data
# set reads (data.root; WebVision's data.imagenet_val) are the user's: a preset never names them, so
# `preset apply` and `preset queue` keep those of params.yaml unless --set changes them; it nulls only
# the keys its data set refuses (a folder's lists; Clothing1M's imagenet_val).
DATA_DEFAULTS = {f"data.{key}": None for key in FOLDER_ONLY if key != "root"}
WEBVISION_DATA = {key: value for key, value in DATA_DEFAULTS.items() if key != "data.imagenet_val"}
# What the presets' nulls resolve to (datasets/folder.py: the reference's transforms and class count), so
# a run that writes them out is still like for like (`presets.preset_differences`; a test keeps them equal).
REFERENCE_DATA = {
    "clothing1m": {"data.image_size": 224, "data.resize": 256, "data.train_crop": "random",
                   "data.mean": [0.6959, 0.6537, 0.6371], "data.std": [0.3113, 0.3192, 0.3214]},
    "webvision": {"data.image_size": 299, "data.resize": 320, "data.train_crop": "random_resized",
                  "data.mean": [0.485, 0.456, 0.406], "data.std": [0.229, 0.224, 0.225], "data.num_classes": 50},
}
NO_NOISE = {"noise.mode": "none", "noise.file": None, "noise.key": None}  # the given labels are the noisy ones
SHARED = {  # Train_clothing1M.py and Train_webvision.py alike
    # `range(num_epochs + 1)` with num_epochs 80: epoch 0 warms up, 1..80 are 80 DivideMix epochs, 81 in
    # all; train.epochs counts them all, so "last" is epoch 80 and the last 10 are 71..80, as the official log.
    "train.epochs": 81,
    "train.warmup_epochs": 1,
    "train.lr_drop_epoch": 40,
    "train.momentum": 0.9,
    "train.batch_size": 32,
    "train.alpha": 0.5,
    "train.T": 0.5,
    "train.lambda_u": 0.0,
    "train.p_threshold": 0.5,
    "train.rampup_epochs": 16,  # unused: lambda_u is 0
    "train.loss_history": 1,
    **GPU_PATH,  # bf16 training: a departure (README, "Deliberate departures"); the division is fp32
    **FULL_METHOD,
}

CLOTHING1M = Preset(
    "clothing1m", "clothing1m", "Clothing1M (14 classes, real noise): paper Table 2",
    {
        **DATA_DEFAULTS,
        "data.dataset": "clothing1m",
        **NO_NOISE,
        "model.arch": "resnet50",
        "model.pretrained": "weights/resnet50-0676ba61.pth",
        "train.protocol": "clothing1m",
        "train.num_batches": 1000,
        "train.lr": 0.002,
        "train.weight_decay": 0.001,
        "train.conf_penalty": True,  # Train_Clothing1M's warm-up adds the confidence penalty
        **SHARED,
    },
    None, None,  # no best epoch nor last 10: the paper's one figure is `figures`' (best-validation weights)
    WEB_NOTES + (
        "model.pretrained: torchvision's ImageNet ResNet-50 weights (IMAGENET1K_V1, resnet50-0676ba61.pth), "
        "placed there by you; nothing is downloaded",
        "result: the official protocol: each network scored alone on the clean val set every epoch, its best "
        "weights kept; the ensemble of the two best tested once (test_acc_best_val)",
    ),
    figures=(PaperFigure("Clothing1M test top-1 (best-validation weights, ensembled)", "test_acc", "best_val", 74.76),),
)

WEBVISION = Preset(
    "webvision", "webvision", "mini-WebVision (first 50 classes, Google subset): paper Table 3",
    {
        **WEBVISION_DATA,
        "data.dataset": "webvision",
        **NO_NOISE,
        "model.arch": "inception_resnet_v2",
        "model.pretrained": None,  # from scratch
        "train.protocol": "webvision",  # the whole training set each epoch (Train_webvision.py)
        "train.num_batches": 1000,  # unused: no class-balanced sample under webvision
        "train.lr": 0.01,
        "train.weight_decay": 0.0005,
        "train.conf_penalty": False,  # commented out in Train_webvision's warm-up
        **SHARED,
    },
    None, None,  # its figures are `figures`' (an epoch of the official log the paper does not name)
    WEB_NOTES + (
        "data: data.num_classes null is the paper's first 50 classes; the ImageNet val folder of the same "
        "classes at data.root/imagenet/val, or data.imagenet_val (yours in params.yaml is kept)",
        "result: top-1 and top-5 of the ensemble on WebVision val and on ImageNet val, every epoch, as "
        "Train_webvision.py; the paper does not say which epoch it reports",
    ),
    figures=(
        PaperFigure("WebVision val top-1", "test_acc", "per_epoch", 77.32),
        PaperFigure("WebVision val top-5", "test_top5", "per_epoch", 91.64),
        PaperFigure("ILSVRC12 val top-1 (same 50 classes)", "test2_acc", "per_epoch", 75.20),
        PaperFigure("ILSVRC12 val top-5 (same 50 classes)", "test2_top5", "per_epoch", 90.84),
    ),
)


def web_presets() -> list[Preset]:
    return [CLOTHING1M, WEBVISION]
