"""The model registry: the reference's architectures (parameter counts, shapes) and pretrained loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dividemix.method.models import HEADS, MODELS, PreActBlock, build_model, load_pretrained


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_every_model_has_a_head_entry_naming_a_linear_layer():
    assert set(HEADS) == set(MODELS)
    for arch in ("cnn_small", "preact_resnet18"):  # the cheap ones; resnet50/inception below
        net = build_model(arch, 7, 3)
        assert isinstance(net.get_submodule(HEADS[arch]), nn.Linear)


def test_preact_resnet18_matches_the_reference_count_and_shape():
    net = build_model("preact_resnet18", 10, 3)
    assert n_params(net) == 11_171_274  # the official PreResNet.py ResNet18(10)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # 100 classes: only the head grows (512 x 90 weights + 90 biases more)
    assert n_params(build_model("preact_resnet18", 100, 3)) == 11_171_274 + 512 * 90 + 90


def test_preact_resnet18_follows_the_reference_layout():
    net = build_model("preact_resnet18", 10, 3)
    assert net.conv1.bias is None and net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    blocks = [m for m in net.modules() if isinstance(m, PreActBlock)]
    assert len(blocks) == 8
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1, 2, 1]
    projections = [b for b in blocks if len(b.shortcut) > 0]
    assert len(projections) == 3  # at each width change; a 1x1 conv without BN
    for block in projections:
        (conv,) = block.shortcut
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.bias is None
    # no final BN + ReLU between the last stage and the head (He et al.'s PreAct ResNet has one)
    assert [name for name, _ in net.named_children()] == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "linear"]


def test_preact_block_shortcut_takes_the_activated_input():
    """The reference adds shortcut(relu(bn1(x))), not x: check on an identity block."""
    block = PreActBlock(4, 4).eval()
    nn.init.zeros_(block.conv2.weight)  # residual branch = 0, so the output is the shortcut alone
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(block.bn1(x)))


def test_preact_resnet18_accepts_other_channel_counts():
    net = build_model("preact_resnet18", 10, 1).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_resnet50_head_and_count():
    net = build_model("resnet50", 14, 3)
    # torchvision's 25,557,032 parameters for 1000 classes, with a 14-class fc
    assert n_params(net) == 25_557_032 - (2048 * 1000 + 1000) + (2048 * 14 + 14)
    assert net.fc.out_features == 14
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 14)


def test_inception_resnet_v2_from_timm():
    net = build_model("inception_resnet_v2", 50, 3)
    assert n_params(net) == 54_383_314  # timm 1.0.31, 50 classes
    assert net.get_classifier().out_features == 50
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 75, 75)).shape == (1, 50)  # 75 px: the smallest input it takes


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory) -> tuple[Path, dict]:
    """A 1000-class ResNet-50 state dict written as torchvision's ImageNet file would be."""
    torch.manual_seed(0)
    source = build_model("resnet50", 1000, 3)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(source.state_dict(), path)
    return path, source.state_dict()


def test_resnet50_loads_pretrained_weights_and_keeps_a_fresh_head(imagenet_like):
    path, source = imagenet_like
    torch.manual_seed(1)
    fresh_head = build_model("resnet50", 14, 3).fc.weight.detach().clone()
    torch.manual_seed(1)
    net = build_model("resnet50", 14, 3, pretrained=path)
    loaded = net.state_dict()
    for key, value in source.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert net.fc.weight.shape == (14, 2048)
    assert torch.equal(net.fc.weight, fresh_head)  # untouched by the file


def test_same_class_count_loads_the_head_too(imagenet_like):
    path, source = imagenet_like
    net = build_model("resnet50", 1000, 3, pretrained=str(path))
    assert torch.equal(net.fc.weight, source["fc.weight"]) and torch.equal(net.fc.bias, source["fc.bias"])


def test_a_dataparallel_prefix_is_stripped(tmp_path: Path):
    source = build_model("preact_resnet18", 10, 3)
    path = tmp_path / "dp.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    net = build_model("preact_resnet18", 10, 3, pretrained=path)
    assert torch.equal(net.linear.weight, source.linear.weight)


def test_missing_file_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="model.pretrained: .*nope.pth: file not found"):
        build_model("resnet50", 14, 3, pretrained=tmp_path / "nope.pth")


def test_wrong_keys_are_a_one_line_error(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save(build_model("cnn_small", 10, 3).state_dict(), path)
    with pytest.raises(ValueError) as info:
        build_model("preact_resnet18", 10, 3, pretrained=path)
    message = str(info.value)
    assert "\n" not in message and "keys do not match" in message and "missing" in message and "unexpected" in message


def test_wrong_shapes_outside_the_head_are_refused(tmp_path: Path):
    path = tmp_path / "gray.pt"
    torch.save(build_model("preact_resnet18", 10, 1).state_dict(), path)  # 1-channel stem
    with pytest.raises(ValueError, match="shapes do not match the model: conv1.weight"):
        build_model("preact_resnet18", 10, 3, pretrained=path)


def test_not_a_state_dict_is_refused(tmp_path: Path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a loadable weights file"):
        load_pretrained(build_model("cnn_small", 10, 1), path, head="8")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_pretrained(build_model("cnn_small", 10, 1), tmp_path / "dict.pt", head="8")


def test_unknown_arch_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: cnn_small, inception_resnet_v2, preact_resnet18, resnet50"):
        build_model("vgg", 10, 3)


def test_bench_cifar_runs_on_a_tiny_cpu_setting(capsys):
    """benchmarks/bench_cifar.py end to end (2 images a batch; the bf16 + channels-last variant)."""
    import runpy

    from conftest import REPO

    module = runpy.run_path(str(REPO / "benchmarks" / "bench_cifar.py"))
    assert module["main"](["--n-train", "8", "--batch", "2", "--steps", "1", "--warmup-steps", "0",
                           "--eval-batch", "8", "--eval-repeats", "1", "--variants", "bf16+cl"]) == 0
    out = capsys.readouterr().out
    assert "11,171,274 parameters" in out and "1.111 GFLOPs per 32x32 image forward" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("bf16+cl ")]
    assert len(rows) == 1 and rows[0][1:3] == ["true", "true"] and float(rows[0][3]) > 0
