"""train.augment (images.views: paper, weak_strong): AugDesc-WS's views, each image its own strong
operation from torchvision's policies, the guesses on the weak views and MixMatch on the strong, one
stream of the run's seed (resume), the streamed store like the in-memory one, and the default path
drawing what it always drew.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import N_SMALL
from dividemix.images.batches import DeviceImages
from dividemix.images.streamed import StreamedImages
from dividemix.images.views import ViewDraws, views_for, weak_strong
from dividemix.method import mixmatch
from dividemix.training import dividemix_epoch as epoch_module
from dividemix.training import streams
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.streams import EpochStreams
from steps import division, nets_for
from test_switches import with_params

# --- train.augment ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", weak_strong.POLICIES)
def test_each_image_gets_its_own_strong_operation(policy):
    """A batch of one image repeated comes out as many different images: one draw per image
    (torchvision's transforms draw once per call: a batch would come out all alike)."""
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = weak_strong.apply_policy(image.repeat(32, 1, 1, 1), policy, torch.Generator().manual_seed(1))
    assert len({bytes(x.numpy().tobytes()) for x in out}) >= 8


def test_the_policies_are_torchvisions_own_operations():
    """Each group of images is transformed by torchvision's `_apply_op` with its magnitude."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as tv

    batch = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    stages = weak_strong.draw_ops("trivialaugment_wide", 16, (32, 32), torch.Generator().manual_seed(3))
    out = weak_strong.apply_policy(batch, "trivialaugment_wide", torch.Generator().manual_seed(3))
    for i, op in enumerate(stages[0]):
        expected = batch[i : i + 1] if op is None else tv._apply_op(batch[i : i + 1], op[0], op[1],
                                                                    interpolation=InterpolationMode.NEAREST, fill=None)
        assert torch.equal(out[i : i + 1], expected), op


REAL_STEP = epoch_module.train_step
REAL_MIX = mixmatch.mix


def step_batches(ws, monkeypatch, epoch=2):
    """Every StepBatch train_step receives in one epoch of net 1, and MixMatch's inputs."""
    seen, mixed = [], []
    real_step, real_mix = REAL_STEP, REAL_MIX

    def spy_step(net, peer, optimizer, batch, **kwargs):
        seen.append(batch)
        return real_step(net, peer, optimizer, batch, **kwargs)

    def spy_mix(inputs, *args, **kwargs):
        mixed.append(inputs)
        return real_mix(inputs, *args, **kwargs)

    monkeypatch.setattr(epoch_module, "train_step", spy_step)
    monkeypatch.setattr("dividemix.method.mixmatch.mix", spy_mix)
    net, peer, optimizer = nets_for(ws)
    labeled = np.zeros(N_SMALL, dtype=bool)
    labeled[: N_SMALL // 2] = True
    dividemix_epoch(net, peer, optimizer, ws, division(labeled), epoch, 1)
    return seen, mixed


def test_weak_views_guess_and_strong_views_are_mixed(small_ws, monkeypatch):
    paper, paper_mixed = step_batches(small_ws, monkeypatch)
    ws = with_params(small_ws, **{"train.augment": "weak_strong", "train.strong_policy": "randaugment"})
    strong, strong_mixed = step_batches(ws, monkeypatch)
    assert len(paper) == len(strong) == 2
    for p, s, mixed in zip(paper, strong, strong_mixed):
        for name in ("x1", "x2", "u1", "u2"):  # the guesses see exactly the paper path's weak views
            assert torch.equal(getattr(p, name), getattr(s, name)), name
        assert p.mix is None and s.mix is not None
        assert torch.equal(mixed, torch.cat(s.mix))  # MixMatch mixes the strong views
        assert not torch.equal(s.mix[0], s.x1) and not torch.equal(s.mix[0], s.mix[1])
    for p, mixed in zip(paper, paper_mixed):
        assert torch.equal(mixed, torch.cat([p.x1, p.x2, p.u1, p.u2]))


def test_the_default_path_draws_what_it_always_drew(small_ws):
    """`paper` is the two train_pair calls in the reference's order on the AUGMENT stream; the
    stream purposes keep their numbers and the strong stream is a new one."""
    assert (streams.ORDER, streams.AUGMENT, streams.MIX, streams.GMM, streams.INIT, streams.UNLABELED,
            streams.SUBSET, streams.STRONG) == tuple(range(8))
    s = EpochStreams(123, 2, 1)
    x, u = torch.arange(0, 16), torch.arange(16, 40)
    v = views_for("paper", "autoaugment_cifar10")(small_ws.train_images, small_ws.train_pair, x, u,
                                                  ViewDraws(weak=s.augment(), strong=s.strong()))
    g = s.augment()
    x1, x2 = small_ws.train_pair(x, g)
    u1, u2 = small_ws.train_pair(u, g)
    for got, want in zip((v.x1, v.x2, v.u1, v.u2), (x1, x2, u1, u2)):
        assert torch.equal(got, want)
    assert v.mix is None
    assert float(v.x1.sum()) == pytest.approx(PINNED_X1_SUM, rel=1e-6)


PINNED_X1_SUM = -48.875450134277344  # computed with the code before the switches existed


def test_the_same_stream_gives_the_same_strong_views(small_ws):
    """Resume: an epoch's strong stream is derived from (seed, epoch, net), so a resumed epoch
    draws the same views; another epoch draws others."""
    x, u = torch.arange(0, 16), torch.arange(16, 40)
    step = views_for("weak_strong", "autoaugment_imagenet")

    def views(epoch):
        s = EpochStreams(123, epoch, 1)
        return step(small_ws.train_images, small_ws.train_pair, x, u, ViewDraws(weak=s.augment(), strong=s.strong()))

    a, b, c = views(3), views(3), views(4)
    assert all(torch.equal(p, q) for p, q in zip(a.mix, b.mix))
    assert not torch.equal(a.mix[0], c.mix[0])


def test_strong_views_are_the_same_from_the_streamed_store(small_ws, tmp_path):
    images = small_ws.train_images.images.numpy()
    np.save(tmp_path / "train.npy", images)
    streamed = StreamedImages(tmp_path / "train.npy", small_ws.train_images.spec, torch.device("cpu"))
    rows_ = torch.arange(0, 24)
    for source in (small_ws.train_images, streamed):
        assert source.rows(rows_).dtype == torch.uint8
    a = weak_strong.strong_view(small_ws.train_images, small_ws.train_images.rows(rows_), torch.Generator().manual_seed(5),
                                "randaugment")
    b = weak_strong.strong_view(streamed, streamed.rows(rows_), torch.Generator().manual_seed(5), "randaugment")
    streamed.close()
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == (24, 1, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_strong_views_on_cuda_equal_the_cpus(small_ws):
    spec = small_ws.train_images.spec
    gpu = DeviceImages(small_ws.train_images.images.numpy(), spec, torch.device("cuda"))
    rows_ = torch.arange(0, 24)
    a = weak_strong.strong_view(small_ws.train_images, small_ws.train_images.rows(rows_), torch.Generator().manual_seed(5),
                                "autoaugment_cifar10")
    b = weak_strong.strong_view(gpu, gpu.rows(rows_), torch.Generator().manual_seed(5), "autoaugment_cifar10")
    assert b.device.type == "cuda"
    torch.testing.assert_close(a, b.cpu(), atol=1e-5, rtol=0)


def test_weak_strong_trains_on_the_labeled_samples_alone_when_none_is_unlabeled(small_ws):
    ws = with_params(small_ws, **{"train.augment": "weak_strong"})
    net, peer, optimizer = nets_for(ws)
    out = dividemix_epoch(net, peer, optimizer, ws, division(np.ones(N_SMALL, dtype=bool)), 2, 1)
    assert out["n_unlabeled"][0] == 0 and out["loss_u"] == [0.0] * len(out["step"])
