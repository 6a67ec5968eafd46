"""What a run trained, used: `dividemix predict`, `dividemix export-model`, the model card, and the
model as a DVC artifact (issue 25).

One export is shared by the module (`served`: the README's quick start run in a copy of the tiny
run); the folder run is made in-process from 150 digit PNGs with a validation list.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, TINY_PARAMS, dvc, dvc_env, run_stages_in_process, write_params
from dividemix_cli import main

pytestmark = pytest.mark.stage  # a tiny run, DVC: not in the fast tier


def quick_start_commands() -> list[str]:
    """The `dividemix` lines of the README's quick start: its first code block that predicts."""
    blocks = re.findall(r"```\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    block = next(b for b in blocks if "dividemix predict" in b)
    return [" ".join(shlex.split(line, comments=True)) for line in block.splitlines() if line.startswith("dividemix ")]


def run_cli(args: list[str], cwd: Path | None = None) -> int:
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        return main([str(a) for a in args])


@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory) -> Path:
    """A copy of the tiny run with evaluate's metrics, in which the README's quick start was run."""
    root = tmp_path_factory.mktemp("served") / "run"
    shutil.copytree(tiny_run, root)
    run_stages_in_process(root, TINY_PARAMS, ["evaluate"])
    for command in quick_start_commands():
        assert run_cli(shlex.split(command)[1:], cwd=root) == 0, command
    return root


def test_the_readme_quick_start_predicts_and_exports_the_default_run(served):
    commands = quick_start_commands()
    assert any(c.startswith("dividemix predict") for c in commands)
    assert any(c.startswith("dividemix export-model") for c in commands)
    assert (served / "predictions.parquet").is_file() and (served / "predictions.csv").is_file()
    assert {p.name for p in (served / "model").iterdir()} == {"model.onnx", "weights.safetensors", "model.json"}


def test_predict_on_the_test_split_gives_the_accuracy_evaluate_reports(served):
    frame = pd.read_parquet(served / "predictions.parquet")
    metrics = json.loads((served / "metrics/eval.json").read_text())
    assert len(frame) == 360 and frame["path"].iloc[0] == "test:0"
    assert (frame["predicted"] == frame["label"]).mean() == pytest.approx(metrics["test_acc_last"], abs=1e-6)
    assert list(frame.columns[:5]) == ["path", "label", "predicted", "predicted_name", "probability"]
    assert (frame["predicted"] == frame["top1"]).all() and (frame["probability"] == frame["top1_probability"]).all()
    assert (frame["predicted_name"] == frame["predicted"].astype(str)).all()  # the digits' class names
    assert (frame["top1_probability"] >= frame["top5_probability"]).all()
    assert {"net1_predicted", "net2_predicted", "net1_probability", "net2_probability"} <= set(frame.columns)
    csv = pd.read_csv(served / "predictions.csv")
    assert (csv["predicted"].to_numpy() == frame["predicted"].to_numpy()).all()
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(served / "predictions.parquet").metadata[b"dividemix.meta"])
    assert meta["weights"] == "final" and meta["epoch"] == TINY_PARAMS["train"]["epochs"] - 1


FRESH = """
import json, sys
import numpy as np, onnxruntime as ort
root = sys.argv[1]
info = json.load(open(f"{root}/model/model.json"))
pre = info["preprocess"]
pixels = np.load(f"{root}/data/prepared/test_images.npy")  # the digits store: 0..16, stored_pixel_scale
scale = np.float32(pre["stored_pixel_scale"])
mean = np.array(pre["mean"], np.float32)[:, None, None] * scale
std = np.array(pre["std"], np.float32)[:, None, None] * scale
session = ort.InferenceSession(f"{root}/model/" + info["files"]["onnx"], providers=["CPUExecutionProvider"])
probs, = session.run(["probabilities"], {"images": (pixels.astype(np.float32) - mean) / std})
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"dividemix", "dividemix_cli", "torch"})
print(json.dumps({"probs": probs.tolist(), "loaded": loaded}))
"""


def test_the_exported_model_reproduces_predict_without_this_package(served):
    """A fresh interpreter with onnxruntime, numpy and json only: predict's classes and probabilities."""
    result = subprocess.run([sys.executable, "-c", FRESH, str(served)], capture_output=True, text=True, timeout=120,
                            check=True)
    got = json.loads(result.stdout)
    assert got["loaded"] == []  # neither this package nor torch
    probs = np.array(got["probs"])
    frame = pd.read_parquet(served / "predictions.parquet")
    assert (probs.argmax(1) == frame["predicted"].to_numpy()).all()
    np.testing.assert_allclose(probs.max(1), frame["probability"].to_numpy(), atol=1e-5)
    top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    assert (top5 == frame[[f"top{k}" for k in range(1, 6)]].to_numpy()).all()


def test_the_export_holds_the_weights_and_what_a_server_needs(served):
    from safetensors.numpy import load_file

    import onnx

    weights = load_file(served / "model/weights.safetensors")
    state = torch.load(served / "checkpoints/train/last.pt", map_location="cpu", weights_only=True)
    for net in ("1", "2"):
        for key, value in state["nets"][net].items():
            np.testing.assert_array_equal(weights[f"net{net}.{key}"], value.numpy())
    assert len(weights) == 2 * len(state["nets"]["1"])
    info = json.loads((served / "model/model.json").read_text())
    meta = json.loads((served / "data/prepared/meta.json").read_text())
    assert info["classes"] == meta["classes"] and info["architecture"] == "cnn_small"
    assert info["preprocess"]["mean"] == meta["mean"] and info["preprocess"]["std"] == meta["std"]
    assert info["preprocess"]["input_size"] == [1, 8, 8] and info["preprocess"]["resize_short_side"] is None
    assert info["weights"]["which"] == "final" and info["weights"]["epoch"] == 3
    assert info["run"]["params"]["model.arch"] == "cnn_small"
    assert info["run"]["metrics"] == json.loads((served / "metrics/eval.json").read_text())
    assert info["check"]["same_classes"] and info["check"]["max_abs_diff_probabilities"] < 1e-4
    graph = onnx.load(served / "model/model.onnx").graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch
    assert [o.name for o in graph.output] == ["probabilities", "logits", "net1_logits", "net2_logits"]


def test_predict_reads_image_files_and_lists(served, tmp_path):
    """Digits as 8x8 grey files (an embedded data set: the file is the network's input as is)."""
    from PIL import Image

    images = np.load(served / "data/prepared/test_images.npy")[:3, 0]
    for i, image in enumerate(images):
        Image.fromarray((image.astype(np.float64) * 255 / 16).round().astype(np.uint8), mode="L").save(tmp_path / f"{i}.png")
    (tmp_path / "list.txt").write_text("0.png 7\n# a comment\n1.png\n")
    out = tmp_path / "p.parquet"
    assert run_cli(["predict", tmp_path / "2.png", tmp_path / "list.txt", "--run", served, "--out", out]) == 0
    frame = pd.read_parquet(out)
    assert list(frame["path"]) == [str(tmp_path / "2.png"), "0.png", "1.png"]
    assert frame["label"].tolist()[1] == 7 and pd.isna(frame["label"].tolist()[0])
    split = pd.read_parquet(served / "predictions.parquet")
    assert list(frame["predicted"]) == list(split["predicted"].iloc[[2, 0, 1]])  # the same images, the same classes


def test_predict_reads_a_git_revisions_run_through_dvc(served, tmp_path, capsys):
    """--rev: the run's files at a commit, read through DVC as `diff` reads them (nothing checked out)."""
    repo = tmp_path / "repo"
    for relative in ("checkpoints/train", "data/prepared", "artifacts/divisions", "metrics"):
        shutil.copytree(served / relative, repo / relative)
    env = dvc_env(repo)
    # tracked by DVC, as a pipeline's outputs are: a revision's files come from the DVC cache
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"],
                    ["dvc", "add", "-q", "checkpoints/train", "data/prepared", "artifacts/divisions", "metrics"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "run"]):
        subprocess.run(command, cwd=repo, check=True, env=env)
    shutil.rmtree(repo / "checkpoints")  # the workspace no longer has the networks: only the commit does
    out = tmp_path / "rev.parquet"
    assert run_cli(["predict", "--split", "test", "--rev", "HEAD", "--repo", repo, "--out", out]) == 0
    assert "run: HEAD" in capsys.readouterr().out
    local = pd.read_parquet(served / "predictions.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), local)
    assert run_cli(["export-model", "--rev", "no-such-rev", "--repo", repo, "--out", tmp_path / "model"]) == 2
    one_line_error(capsys, "no-such-rev", "not a git revision or DVC experiment")


@pytest.fixture(scope="module")
def folder_served(tmp_path_factory) -> Path:
    """A folder data set (150 digit PNGs, a validation list: best-validation weights) run in-process."""
    from test_folder_pipeline import folder_params, write_digit_folder

    root = tmp_path_factory.mktemp("folder_served")
    (root / "lists").mkdir()
    files = write_digit_folder(root / "source", root / "lists")
    params = folder_params(files["root"], **{f"data.{s}_list": str(files[s]) for s in ("train", "val", "test")})
    write_params(root / "params.yaml", params)
    run_stages_in_process(root, params, ["check", "download", "noise", "warmup", "baseline", "train", "evaluate"])
    return root


def test_predict_on_a_folder_runs_test_list_gives_evaluated_accuracy(folder_served, tmp_path, capsys):
    metrics = json.loads((folder_served / "metrics/eval.json").read_text())
    images = folder_served / "source/images"
    common = ["--run", folder_served, "--root", images]
    assert run_cli(["predict", folder_served / "lists/test.txt", *common, "--out", tmp_path / "best.parquet"]) == 0
    assert "best-validation" in capsys.readouterr().out
    best = pd.read_parquet(tmp_path / "best.parquet")
    assert (best["predicted"] == best["label"]).mean() == pytest.approx(metrics["test_acc_best_val"], abs=1e-6)
    assert run_cli(["predict", folder_served / "lists/test.txt", *common, "--weights", "final",
                    "--out", tmp_path / "final.parquet"]) == 0
    final = pd.read_parquet(tmp_path / "final.parquet")
    assert (final["predicted"] == final["label"]).mean() == pytest.approx(metrics["test_acc_last"], abs=1e-6)
    # the same files as a folder, and the run's own prepared test split: the same predictions
    assert run_cli(["predict", images / "test", "--run", folder_served, "--out", tmp_path / "folder.parquet"]) == 0
    assert list(pd.read_parquet(tmp_path / "folder.parquet")["predicted"]) == list(best["predicted"])
    assert run_cli(["predict", "--split", "test", "--run", folder_served, "--out", tmp_path / "split.parquet"]) == 0
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "split.parquet")["probability"], best["probability"], atol=1e-6)


def test_a_folder_runs_export_records_its_resize_and_crop(folder_served, tmp_path):
    assert run_cli(["export-model", "--run", folder_served, "--out", tmp_path / "model"]) == 0
    info = json.loads((tmp_path / "model/model.json").read_text())
    meta = json.loads((folder_served / "data/prepared/meta.json").read_text())
    assert info["weights"]["which"] == "best-val"
    assert info["preprocess"]["resize_short_side"] == meta["resize"] and info["preprocess"]["center_crop"] == 8
    assert info["preprocess"]["color"] == "RGB" and info["preprocess"]["pixel_scale"] == 255


# ------------------------------------------------------------------------------ refusals
def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_a_missing_run_is_refused_in_one_line(served, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    assert run_cli(["predict", "--split", "test", "--run", tmp_path / "nope", "--out", out]) == 2
    one_line_error(capsys, "nope", "no such run folder")
    (tmp_path / "empty").mkdir()
    assert run_cli(["export-model", "--run", tmp_path / "empty", "--out", tmp_path / "model"]) == 2
    one_line_error(capsys, "checkpoints/train/last.pt", "no trained networks")
    assert run_cli(["predict", "--split", "test", "--run", served, "--weights", "best-val", "--out", out]) == 2
    one_line_error(capsys, "best-val", "no validation set")
    assert not out.exists() and not (tmp_path / "model").exists()


def test_an_unreadable_image_is_refused_and_nothing_written(served, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((9, 9), np.uint8), mode="L").save(tmp_path / "big.png")
    out = tmp_path / "out" / "p.parquet"
    assert run_cli(["predict", tmp_path / "good.png", tmp_path / "bad.png", "--run", served, "--out", out, "--csv"]) == 2
    one_line_error(capsys, "bad.png", "unreadable image")
    assert run_cli(["predict", tmp_path / "big.png", "--run", served, "--out", out]) == 2
    one_line_error(capsys, "big.png", "9x9", "8x8")
    assert run_cli(["predict", tmp_path / "missing.png", "--run", served, "--out", out]) == 2
    one_line_error(capsys, "missing.png", "no such image")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # not even a temporary file


def test_export_model_refuses_a_folder_it_did_not_write(served, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert run_cli(["export-model", "--run", served, "--out", tmp_path]) == 2
    one_line_error(capsys, "other files")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_cuda_without_a_gpu_is_refused_in_one_line(served, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    assert run_cli(["predict", "--split", "test", "--run", served, "--device", "cuda", "--out", tmp_path / "p.parquet"]) == 2
    one_line_error(capsys, "cuda")


class Branchy(torch.nn.Module):
    """A network whose path depends on the data: the dynamo exporter cannot capture it."""

    def forward(self, x):
        if x.sum() > 0:
            return x.flatten(1)[:, :3]
        return -x.flatten(1)[:, :3]


def test_an_architecture_the_exporter_cannot_capture_is_refused_in_one_line(served, monkeypatch):
    from dividemix.serving import run_model
    from dividemix.serving.inputs import ServingError
    from dividemix.serving.onnx_export import onnx_bytes

    with pytest.raises(ServingError, match="model.arch branchy: torch.onnx.export .* cannot export") as caught:
        onnx_bytes(Branchy().eval(), torch.ones(2, 1, 4, 4), "branchy")
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(run_model, "recorded_params", lambda source: {"model.arch": "vit_tiny"})
    with pytest.raises(ServingError, match="model.arch 'vit_tiny' is not a model this code builds; allowed: cnn_small"):
        run_model.load_run_model(run_model.open_run(served))


ARCHS = [("cnn_small", 1, 8), ("preact_resnet18", 3, 32),
         pytest.param("resnet50", 3, 64, marks=pytest.mark.slow), pytest.param("inception_resnet_v2", 3, 96, marks=pytest.mark.slow)]


@pytest.mark.parametrize(("arch", "channels", "size"), ARCHS)
def test_every_preset_architecture_exports_and_runs_in_onnxruntime(arch, channels, size):
    """Two freshly built networks of each preset's architecture (small inputs: the batch is what is dynamic)."""
    from dividemix.method.models import build_model
    from dividemix.serving.onnx_export import onnx_bytes, onnx_check
    from dividemix.serving.predict import Ensemble

    torch.manual_seed(0)
    ensemble = Ensemble(build_model(arch, 10, channels).eval(), build_model(arch, 10, channels).eval()).eval()
    images = torch.randn(5, channels, size, size)
    check = onnx_check(onnx_bytes(ensemble, images[:2], arch), ensemble, images)
    assert check["same_classes"] and check["batch_sizes"] == [2, 3]


# ------------------------------------------------------------------------ the model card
def test_the_report_ends_with_a_model_card(served):
    run_stages_in_process(served, TINY_PARAMS, ["report"])
    markdown = (served / "report/report.md").read_text()
    card = markdown[markdown.index("## Model card"):]
    for fragment in ("two cnn_small networks", "digits: 1437 training images", "sym at rate 50.00%",
                     "Division (final epoch) | epoch 3", "final epoch", "Departures from the paper",
                     "dividemix export-model --out model", "onnxruntime"):
        assert fragment in card, fragment
    page = (served / "report/index.html").read_text()
    assert '<h2 id="model-card">Model card</h2>' in page and page.rstrip().endswith("</html>")


# ------------------------------------------------------------------------ the DVC artifact
def test_dvc_finds_the_model_artifact_and_repro_stays_a_no_op(tmp_path):
    """dvc.yaml's `artifacts:` block in a repository whose train stage writes the checkpoint."""
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]
    (name, artifact), = declared.items()
    assert artifact["type"] == "model" and artifact["path"] == "checkpoints/train/last.pt"
    assert artifact["desc"] and "dividemix" in artifact["labels"]
    stage = {"cmd": "mkdir -p checkpoints/train && echo weights > checkpoints/train/last.pt",
             "outs": [{"checkpoints/train": {"persist": True}}]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}, "artifacts": declared}))
    env = dvc_env(tmp_path)
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, check=True, env=env)
    assert "Running stage 'train'" in dvc(tmp_path, "repro").stdout
    assert "Running stage" not in dvc(tmp_path, "repro").stdout  # unchanged: a no-op
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "run"], cwd=tmp_path, check=True, env=env)
    # a registered version is a GTO tag (what `gto register` and DVC Studio write): docs/model.md
    subprocess.run(["git", "tag", "-a", f"{name}@v1.0.0", "-m", f"Registering artifact {name} version v1.0.0"],
                   cwd=tmp_path, check=True, env=env)
    dvc(tmp_path, "artifacts", "get", str(tmp_path), name, "-o", str(tmp_path / "got.pt"))
    assert (tmp_path / "got.pt").read_text() == "weights\n"
    dvc(tmp_path, "artifacts", "get", str(tmp_path), name, "--rev", "v1.0.0", "-o", str(tmp_path / "v1.pt"))
    assert (tmp_path / "v1.pt").read_text() == "weights\n"
