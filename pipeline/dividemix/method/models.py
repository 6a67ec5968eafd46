"""Model registry: `model.arch` names a constructor taking the number of classes and channels.

| arch | used for | reference |
|---|---|---|
| `cnn_small` | the embedded digits default | (this project) |
| `preact_resnet18` | CIFAR-10/100, CIFAR-N | the official `PreResNet.py` `ResNet18` |
| `resnet50` | Clothing1M | `torchvision.models.resnet50`, ImageNet weights from a local file |
| `inception_resnet_v2` | WebVision | the official `InceptionResNetV2.py` (Cadene's port); here timm's |

`build_model(arch, num_classes, in_channels, pretrained=None)` builds one; `pretrained` is a local
state-dict file (`model.pretrained`): nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def cnn_small(num_classes: int, in_channels: int = 1) -> nn.Module:
    """A small VGG-style CNN for 8x8 digits: 8x8 -> 4x4 -> 2x2 -> linear head (~66k parameters)."""
    return nn.Sequential(
        _conv_bn_relu(in_channels, 32),
        _conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        _conv_bn_relu(32, 64),
        _conv_bn_relu(64, 64),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, num_classes),
    )


# ------------------------------------------------------------------------ PreAct ResNet-18
def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """The reference's `PreActBlock` (PreResNet.py), layer for layer.

    Two details of the reference that differ from He et al.'s pre-activation block, kept on
    purpose: the shortcut is taken *after* the first BN+ReLU (so even the identity shortcut
    carries the activated input), and the projection shortcut is a 1x1 convolution without BN.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.shortcut = nn.Sequential()  # identity
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)  # reference: shortcut of the activated input, not of x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """The reference's `ResNet(PreActBlock, [2, 2, 2, 2])`: 3x3 stem conv (no bias) -> BN -> ReLU,
    four stages at 64/128/256/512 channels with strides 1/2/2/2, *no* final BN+ReLU, global
    average pool, linear head."""

    def __init__(self, num_blocks: tuple[int, ...], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, 64)
        self.bn1 = nn.BatchNorm2d(64)
        layers, c_in = [], 64
        for width, blocks, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
            stage = []
            for s in [stride] + [1] * (blocks - 1):
                stage.append(PreActBlock(c_in, width, s))
                c_in = width
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # The reference's F.avg_pool2d(out, 4): on 32x32 inputs the last map is 4x4, so this global
        # average is the same value; it also accepts other input sizes.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def preact_resnet18(num_classes: int, in_channels: int = 3) -> nn.Module:
    """PreAct ResNet-18 of the official code (11,171,274 parameters for 10 classes)."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels)


# ------------------------------------------------------------------------------- ResNet-50
def resnet50(num_classes: int, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-50 (no weights), its `fc` replaced for `num_classes` (the reference's
    Clothing1M model: `models.resnet50(pretrained=True)` then `model.fc = nn.Linear(2048, C)`)."""
    from torchvision.models import resnet50 as tv_resnet50

    net = tv_resnet50(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


# --------------------------------------------------------------------- Inception-ResNet-v2
def inception_resnet_v2(num_classes: int, in_channels: int = 3) -> nn.Module:
    """Inception-ResNet-v2 from scratch (the reference's WebVision model), built by timm.

    The official InceptionResNetV2.py is Cadene's port of the TF model; timm's is the same port.
    Inputs must be at least 75x75 (the stem's unpadded stride-2 convolutions); the reference uses 299.
    """
    import timm

    return timm.create_model("inception_resnet_v2", pretrained=False, num_classes=num_classes, in_chans=in_channels)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn_small": cnn_small,
    "preact_resnet18": preact_resnet18,
    "resnet50": resnet50,
    "inception_resnet_v2": inception_resnet_v2,
}

# The classifier layer of each model: its weights depend on the class count, so a pretrained file
# made for another count (ImageNet's 1000 classes) leaves it freshly initialised.
HEADS: dict[str, str] = {
    "cnn_small": "8",
    "preact_resnet18": "linear",
    "resnet50": "fc",
    "inception_resnet_v2": "classif",
}


# ------------------------------------------------------------------------ pretrained weights
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict (name -> tensor) from a local file, loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: {path}: file not found (pretrained weights are never downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "not a weights file"
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(f"model.pretrained: {path}: not a loadable weights file ({type(exc).__name__}: {reason})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a training checkpoint that wraps the weights
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"model.pretrained: {path}: not a state dict (a mapping of parameter names to tensors)")
    state = dict(state)
    if state and all(key.startswith("module.") for key in state):  # saved from nn.DataParallel
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _some(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > n else shown


def load_pretrained(net: nn.Module, path: str | Path, *, head: str) -> list[str]:
    """Load the weights of `path` into `net`; returns the keys left at their fresh initialisation.

    Every key must match by name and shape, except the classifier `head`'s (`head.weight`,
    `head.bias`): when their shapes differ from the net's (another class count) they are dropped
    and the head stays fresh, as the reference does by replacing `fc` after loading ImageNet weights.
    BatchNorm `num_batches_tracked` counters may be absent from the file (they stay 0).
    Anything else (missing, unexpected or mis-shaped keys) raises ValueError, one line.
    """
    state = read_state_dict(path)
    own = net.state_dict()
    head_keys = [key for key in own if key.startswith(f"{head}.")]
    fresh = []
    if all(key in state for key in head_keys) and any(state[key].shape != own[key].shape for key in head_keys):
        for key in head_keys:
            del state[key]
        fresh = head_keys
    # BatchNorm's `num_batches_tracked` counters may be absent: weight files saved before PyTorch
    # 0.4 (e.g. torchvision's 2017 ImageNet ResNet-50) have none, and BatchNorm fills them in on load.
    missing = [key for key in own if key not in state and key not in fresh and not key.endswith(".num_batches_tracked")]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        parts = [f"missing {_some(missing)}" if missing else "", f"unexpected {_some(unexpected)}" if unexpected else ""]
        raise ValueError(
            f"model.pretrained: {path}: keys do not match the model: {'; '.join(p for p in parts if p)}"
        )
    mismatched = [f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
                  for key in state if state[key].shape != own[key].shape]
    if mismatched:
        raise ValueError(f"model.pretrained: {path}: shapes do not match the model: {_some(mismatched)}")
    net.load_state_dict(state, strict=not fresh)
    return fresh


def build_model(arch: str, num_classes: int, in_channels: int, pretrained: str | Path | None = None) -> nn.Module:
    """The network `arch` for `num_classes` and `in_channels`; with `pretrained`, its weights from
    that local file (see `load_pretrained`)."""
    if arch not in MODELS:
        raise ValueError(f"model.arch {arch!r} unknown; allowed: {', '.join(sorted(MODELS))}")
    net = MODELS[arch](num_classes=num_classes, in_channels=in_channels)
    if pretrained is not None:
        load_pretrained(net, pretrained, head=HEADS[arch])
    return net
