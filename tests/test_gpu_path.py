"""The GPU path, checked on the CPU: batched augmentation on the device, bf16 autocast (train.amp),
channels-last (train.channels_last), torch.compile (train.compile), the eval batch
(train.eval_batch_size) and step loops that never synchronise with the host.

Everything here is device-agnostic: the same code runs on CUDA, where these switches pay off.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dividemix.training.dividemix_epoch as dividemix_epoch_module
from conftest import N_SMALL, small_workspace
from dividemix.datasets.registry import SPECS
from dividemix.device import host_to_device
from dividemix.images.batches import DeviceImages
from dividemix.images.transforms import random_hflip, random_translate
from dividemix.method.codivide import LossHistory, co_divide_one
from dividemix.method.inference import eval_logits
from dividemix.method.losses import StepLosses
from dividemix.method.mixmatch import StepBatch
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import make_optimizer
from dividemix.training.warmup import warmup_epoch, warmup_step
from steps import division, stacked, step

RGB = dataclasses.replace(SPECS["digits"], mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3))


def rgb_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, (n, 3, 8, 8), dtype=np.uint8)


def conv_net(seed: int, channels: int = 3, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes),
    )


def rgb_batch(b: int, bu: int, seed: int = 0) -> StepBatch:
    g = torch.Generator().manual_seed(seed)
    images = DeviceImages(rgb_images(2 * (b + bu), seed), RGB, torch.device("cpu"))
    x = images.plain(torch.arange(2 * (b + bu)))
    return StepBatch(
        x1=x[:b], x2=x[b : 2 * b], y=torch.randint(0, 4, (b,), generator=g), w=torch.rand(b, generator=g),
        u1=x[2 * b : 2 * b + bu], u2=x[2 * b + bu :],
    )


def run_step(net, peer, batch, **options):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return stacked(step(net, peer, optimizer, batch, lambda_u=25.0, num_classes=4, **options))


# ----------------------------------------------------------------------- batched augmentation
def test_random_translate_is_random_crop_with_zero_padding():
    """RandomCrop(size, padding=p): zero-pad the uint8 image by p, crop at a top-left offset in 0..2p."""
    batch = torch.as_tensor(rgb_images(6)) + 1  # no zero pixel inside: padding is visible
    generator = torch.Generator().manual_seed(5)
    replay = copy.deepcopy(generator)
    out = random_translate(batch, 4, generator)
    offsets = torch.randint(0, 9, (2, 6), generator=replay)  # the same draw, replayed
    padded = F.pad(batch, (4, 4, 4, 4))  # fill 0: black, before normalisation (torchvision's fill=0)
    for k in range(6):
        i, j = int(offsets[0, k]), int(offsets[1, k])
        assert torch.equal(out[k], padded[k, :, i : i + 8, j : j + 8]), k
    assert out.dtype == torch.uint8 and out.shape == batch.shape


def test_random_translate_offsets_cover_0_to_2p_uniformly():
    batch = torch.ones(4000, 1, 8, 8, dtype=torch.uint8)
    out = random_translate(batch, 2, torch.Generator().manual_seed(0))
    # the first non-zero row of each image gives its vertical offset: rows of zeros = 2 - offset (if >= 0)
    zeros_top = (out[:, 0].sum(2) == 0).int().cumprod(1).sum(1)
    zeros_bottom = (out[:, 0].sum(2) == 0).flip(1).int().cumprod(1).sum(1)
    shift = zeros_top - zeros_bottom  # in -2..2, uniform
    counts = torch.bincount(shift + 2, minlength=5).float() / 4000
    torch.testing.assert_close(counts, torch.full((5,), 0.2), atol=0.03, rtol=0)


def test_random_hflip_mirrors_about_half_the_images():
    batch = torch.as_tensor(rgb_images(400))
    generator = torch.Generator().manual_seed(1)
    replay = copy.deepcopy(generator)
    out = random_hflip(batch, generator)
    flip = torch.rand(400, generator=replay) < 0.5
    assert torch.equal(out[flip], batch[flip].flip(3)) and torch.equal(out[~flip], batch[~flip])
    assert 150 < int(flip.sum()) < 250


def test_host_to_device_on_the_cpu_is_the_tensor_itself():
    tensor = torch.arange(5)
    assert host_to_device(tensor, torch.device("cpu")) is tensor


def test_device_images_stay_uint8_and_normalise_per_batch():
    images = DeviceImages(rgb_images(10), RGB, torch.device("cpu"))
    assert images.images.dtype == torch.uint8
    out = images.plain(torch.tensor([2, 7]))
    mean = torch.tensor(RGB.mean).view(1, 3, 1, 1)
    std = torch.tensor(RGB.std).view(1, 3, 1, 1)
    expected = (torch.as_tensor(rgb_images(10)[[2, 7]]).float() / 16 - mean) / std
    torch.testing.assert_close(out, expected)


# --------------------------------------------------------------------------------- bf16 autocast
def test_amp_step_gives_finite_float32_losses_close_to_fp32():
    net = conv_net(0)
    peer = conv_net(1).eval()
    batch = rgb_batch(8, 6)
    before = [p.detach().clone() for p in net.parameters()]
    fp32_net, amp_net = copy.deepcopy(net), copy.deepcopy(net)
    fp32 = run_step(fp32_net, peer, batch)
    amp = run_step(amp_net, peer, batch, amp=True)
    assert amp.dtype == torch.float32 and torch.isfinite(amp).all()
    assert not torch.equal(amp, fp32)  # it really ran in bf16
    # each term (Lx, Lu, penalty, total) within bf16's precision of its own fp32 value
    for name, a, b in zip(("loss_x", "loss_u", "penalty", "loss"), amp.tolist(), fp32.tolist()):
        assert abs(a - b) <= 0.05 * abs(b) + 1e-4, (name, a, b)
    for a, b, start in zip(amp_net.parameters(), fp32_net.parameters(), before):
        assert a.dtype == torch.float32  # the weights stay float32
        # the same SGD update as in fp32: the same direction and size (not just "close" weights)
        da, db = (a - start).detach().flatten(), (b - start).detach().flatten()
        assert db.norm() > 0
        assert torch.nn.functional.cosine_similarity(da, db, dim=0) > 0.98
        assert abs(da.norm() / db.norm() - 1) < 0.1


def test_amp_warmup_step_and_eval_pass():
    net = conv_net(0)
    x = rgb_batch(16, 0).x1
    y = torch.arange(16) % 4
    out = {}
    for amp in (False, True):
        copy_ = copy.deepcopy(net)
        optimizer = torch.optim.SGD(copy_.parameters(), lr=0.1)
        out[amp] = stacked(warmup_step(copy_, optimizer, x, y, conf_penalty=True, amp=amp))
    assert torch.isfinite(out[True]).all()
    torch.testing.assert_close(out[True], out[False], rtol=0.05, atol=0.02)
    assert not torch.equal(out[True], out[False])
    images = DeviceImages(rgb_images(20), RGB, torch.device("cpu"))
    logits = {amp: eval_logits(net, images, amp=amp) for amp in (False, True)}
    assert logits[True].dtype == torch.float32
    torch.testing.assert_close(logits[True], logits[False], rtol=0.05, atol=0.05)


# --------------------------------------------------------------------------------- channels-last
def test_channels_last_batches_hold_the_same_values():
    plain = DeviceImages(rgb_images(10), RGB, torch.device("cpu"))
    last = DeviceImages(rgb_images(10), RGB, torch.device("cpu"), channels_last=True)
    index = torch.tensor([0, 3, 9])
    generator = torch.Generator().manual_seed(0)
    for a, b in ((plain.plain(index), last.plain(index)),
                 (plain.augmented(index, copy.deepcopy(generator)), last.augmented(index, copy.deepcopy(generator)))):
        assert torch.equal(a, b)
        assert b.is_contiguous(memory_format=torch.channels_last) and not b.is_contiguous()


def test_channels_last_step_gives_the_same_numbers_within_tolerance():
    batch = rgb_batch(8, 6)
    cl = lambda x: x.contiguous(memory_format=torch.channels_last)  # noqa: E731
    batch_cl = StepBatch(x1=cl(batch.x1), x2=cl(batch.x2), y=batch.y, w=batch.w, u1=cl(batch.u1), u2=cl(batch.u2))
    net, peer = conv_net(0), conv_net(1).eval()
    net_cl, peer_cl = (copy.deepcopy(m).to(memory_format=torch.channels_last) for m in (net, peer))
    assert net_cl[0].weight.is_contiguous(memory_format=torch.channels_last)
    out = run_step(net, peer, batch)
    out_cl = run_step(net_cl, peer_cl, batch_cl)
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-5)
    for a, b in zip(net_cl.parameters(), net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_train_channels_last_puts_network_and_batches_in_channels_last():
    ws = small_workspace(**{"train.channels_last": True})
    net = ws.new_net(1)
    assert net[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert ws.train_images.channels_last and ws.test_images.channels_last
    rows = warmup_epoch(net, make_optimizer(net, ws.config.train), ws, 0, 1, conf_penalty=False)
    reference = small_workspace()
    net_ref = reference.new_net(1)
    optimizer = make_optimizer(net_ref, reference.config.train)
    rows_ref = warmup_epoch(net_ref, optimizer, reference, 0, 1, conf_penalty=False)
    np.testing.assert_allclose(rows["loss"], rows_ref["loss"], rtol=1e-4)


# -------------------------------------------------------------------------------- eval batch size
def test_eval_passes_use_the_configured_batch():
    ws = small_workspace(**{"train.eval_batch_size": 64})
    net = ws.new_net(1)
    sizes = []
    handle = net.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    logits = ws.logits(net, ws.train_images)
    handle.remove()
    assert sizes == [64, 64, 64, 8]  # 200 = 3 x 64 + 8
    torch.testing.assert_close(logits, eval_logits(net, ws.train_images), rtol=1e-5, atol=1e-5)
    sizes.clear()
    net.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    co_divide_one(net, ws.train_images, ws.noisy_labels, LossHistory(1), p_threshold=0.5, seed=0,
                  eval_batch_size=ws.config.train.eval_batch_size)
    assert sizes == [64, 64, 64, 8]


# ------------------------------------------------------------------------------- host syncs
SYNCS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


@pytest.fixture
def no_host_sync(monkeypatch):
    """Tensor -> host conversions raise, except inside StepLosses.to_host (the per-epoch gather).

    On a GPU each of these waits for the device; on the CPU they are the same calls, so a step
    loop that completes here makes none of them.
    """
    state = {"allowed": False}
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def guarded(self, *args, _real=real, _name=name, **kwargs):
            if not state["allowed"]:
                raise RuntimeError(f"host sync inside a step loop: Tensor.{_name}")
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, guarded)
    real_gather = StepLosses.to_host

    def gather(steps, reduce=None):
        state["allowed"] = True
        try:
            return real_gather(steps, reduce)
        finally:
            state["allowed"] = False

    monkeypatch.setattr(StepLosses, "to_host", staticmethod(gather))
    return state


def test_step_loops_make_no_host_sync(no_host_sync):
    ws = small_workspace(**{"train.amp": True})  # the autocast path too
    nets = {i: ws.new_net(i) for i in (1, 2)}
    optimizer = make_optimizer(nets[1], ws.config.train)
    rows = warmup_epoch(nets[1], optimizer, ws, 0, 1, conf_penalty=True)
    assert len(rows["loss"]) == 2 and np.isfinite(rows["loss"]).all()  # gathered after the loop
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[:130] = True
    rows = dividemix_epoch(nets[1], nets[2], optimizer, ws, division(labeled), 2, 1)
    assert rows["step"] == [0, 1, 2] and np.isfinite(rows["loss"]).all()


def test_the_sync_guard_catches_a_sync_in_the_loop(no_host_sync, monkeypatch):
    """The control: one .item() per step (here in the ramp) is caught."""
    ws = small_workspace()
    nets = {i: ws.new_net(i) for i in (1, 2)}
    real_ramp = dividemix_epoch_module.ramp_weight
    monkeypatch.setattr(dividemix_epoch_module, "ramp_weight", lambda *a: real_ramp(*a) + torch.zeros(()).item())
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[:130] = True
    with pytest.raises(RuntimeError, match="Tensor.item"):
        dividemix_epoch(nets[1], nets[2], make_optimizer(nets[1], ws.config.train), ws, division(labeled), 2, 1)


# -------------------------------------------------------------------------------- torch.compile
@pytest.mark.slow
def test_train_compile_builds_and_steps():
    """Slow: inductor compiles C++ kernels on the CPU (about 1.5 minutes on 2 busy cores)."""
    ws = small_workspace(**{"train.compile": True})
    net = ws.new_net(1)
    assert not isinstance(net, torch._dynamo.eval_frame.OptimizedModule)  # compiled in place:
    assert set(net.state_dict()) == set(small_workspace().new_net(1).state_dict())  # checkpoint keys unchanged
    eager = small_workspace().new_net(1)
    eager.load_state_dict(net.state_dict())
    index = torch.arange(8)
    net.eval(), eager.eval()
    with torch.no_grad():  # the compiled network computes what the eager one does
        torch.testing.assert_close(net(ws.train_images.plain(index)), eager(ws.train_images.plain(index)))
    rows = warmup_epoch(net, make_optimizer(net, ws.config.train), ws, 0, 1, conf_penalty=False)
    assert len(rows["loss"]) == 2 and np.isfinite(rows["loss"]).all()  # 200 images in batches of 2B = 128
