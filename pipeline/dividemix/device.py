"""The device as a parameter: which device, moving host draws onto it without a sync, bf16 autocast.

Nothing in the library assumes a GPU; every random draw is made on a CPU generator (so runs are
reproducible across devices) and queued to the device with `host_to_device`.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn


def resolve_device(name: str) -> torch.device:
    """`train.device`: "auto" is CUDA when available, else the CPU; "cuda" without CUDA is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; allowed here: auto, cpu")
    return torch.device(name)


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small CPU tensor (drawn from a CPU generator) to `device` without a host sync.

    A plain `.to("cuda")` from pageable memory waits for the copy (a synchronisation per step);
    from pinned memory with non_blocking=True it is queued on the stream like a kernel (PyTorch's
    pinned-memory cache keeps the buffer alive until the copy has run). On the CPU: the tensor itself.
    """
    device = torch.device(device)
    if device.type == "cpu" or tensor.device == device:  # (already there: nothing to move)
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on `device` when `amp` (train.amp), else nothing at all (bit-identical fp32)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if amp else nullcontext()


def logits_of(net: nn.Module, x: torch.Tensor, *, amp: bool = False) -> torch.Tensor:
    """`net(x)`; with `amp` the forward pass runs under bf16 autocast and the logits come back in
    float32, so that every softmax, loss and target is computed in float32."""
    if not amp:
        return net(x)
    with autocast(x.device, True):
        out = net(x)
    return out.float()
