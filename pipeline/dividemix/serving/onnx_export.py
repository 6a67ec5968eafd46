"""The ensemble as a model that runs without this package: ONNX, safetensors and model.json.

    model.onnx            input `images` (batch, C, S, S) float32, normalised as model.json says;
                          outputs `probabilities` (softmax of `logits`), `logits` (net1 + net2: the
                          test accuracy's ensemble), `net1_logits`, `net2_logits`; the batch is dynamic
    weights.safetensors   both networks' state dicts, keys `net1.*` and `net2.*`
    model.json            input size, resize and crop, mean/std, class names, which weights, the
                          run's parameters and metrics, the onnxruntime check, the versions

Exported with `torch.onnx.export(..., dynamo=True)` and checked before anything is written:
onnxruntime on a batch of the run's own test images (two batch sizes, so the dynamic batch is
exercised) must give PyTorch's classes and probabilities to float tolerance. The folder is built
under a temporary name and swapped in whole.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dividemix.files.atomic import atomic_dir
from dividemix.serving.inputs import ServingError
from dividemix.serving.predict import Ensemble, normalise
from dividemix.serving.run_model import RunModel

FORMAT, FORMAT_VERSION = "dividemix-model", 1
ONNX_FILE, WEIGHTS_FILE, JSON_FILE = "model.onnx", "weights.safetensors", "model.json"
INPUT, OUTPUTS = "images", ("probabilities", "logits", "net1_logits", "net2_logits")
PROB_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| of a probability (float32 sums in another order)
CHECK_IMAGES = 16


def onnx_bytes(ensemble: torch.nn.Module, example: torch.Tensor, arch: str) -> bytes:
    """The ensemble exported by torch's dynamo exporter, with a dynamic batch; one line if it cannot."""
    batch = torch.export.Dim("batch", min=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_FILE
        try:
            torch.onnx.export(ensemble, (example,), str(path), dynamo=True, input_names=[INPUT],
                              output_names=list(OUTPUTS), dynamic_shapes=({0: batch},), external_data=False,
                              verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; each means "not exportable"
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ServingError(f"model.arch {arch}: torch.onnx.export (dynamo) cannot export this network: "
                               f"{reason}") from None
        return path.read_bytes()


def onnx_check(onnx_model: bytes, ensemble: torch.nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """onnxruntime against PyTorch on `images` in two batch sizes; a disagreement refused in one line."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = [t.numpy() for t in ensemble(images)]
    half = max(1, len(images) // 2)
    parts = [session.run(list(OUTPUTS), {INPUT: images[a:b].numpy()}) for a, b in ((0, half), (half, len(images)))
             if b > a]
    got = [np.concatenate([part[k] for part in parts]) for k in range(len(OUTPUTS))]
    prob_diff = float(np.abs(got[0] - expected[0]).max())
    logit_diff = float(np.abs(got[1] - expected[1]).max())
    same = bool((got[1].argmax(1) == expected[1].argmax(1)).all())
    if prob_diff > PROB_TOLERANCE or not same:
        raise ServingError(f"onnxruntime disagrees with PyTorch on the exported ensemble (max probability "
                           f"difference {prob_diff:.2e}, same classes: {same}); nothing written")
    return {"images": int(len(images)), "batch_sizes": sorted({half, len(images) - half} - {0}),
            "max_abs_diff_probabilities": prob_diff, "max_abs_diff_logits": logit_diff, "same_classes": same,
            "tolerance_probabilities": PROB_TOLERANCE}


def check_images(model: RunModel) -> tuple[torch.Tensor, str]:
    """A few of the run's own test images, normalised; random inputs where the run has none at hand."""
    try:
        images, _ = model.split_arrays("test")
    except ServingError:
        shape = (CHECK_IMAGES, model.preprocessing.channels, model.preprocessing.size, model.preprocessing.size)
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)), "random normal inputs"
    batch = normalise(images[:CHECK_IMAGES], model, model.preprocessing.stored_scale, torch.device("cpu"))
    return batch, "the run's first test images"


def safetensors_bytes(model: RunModel) -> bytes:
    from safetensors.torch import save

    tensors = {f"net{i}.{key}": value.detach().cpu().contiguous().clone()
               for i, state in model.states.items() for key, value in state.items()}
    return save(tensors, metadata={"format": FORMAT, "arch": model.arch, "num_classes": str(model.num_classes),
                                   "in_channels": str(model.preprocessing.channels)})


def model_json(model: RunModel, check: dict[str, Any], opset: int | None) -> dict[str, Any]:
    import onnx
    import onnxruntime

    prep = model.preprocessing
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "files": {"onnx": ONNX_FILE, "weights": WEIGHTS_FILE},
        "onnx": {"opset": opset, "input": {"name": INPUT, "shape": ["batch", prep.channels, prep.size, prep.size],
                                           "dtype": "float32"},
                 "outputs": list(OUTPUTS), "dynamic_batch": True},
        "ensemble": "predicted class = argmax(logits), logits = net1_logits + net2_logits (the run's test "
                    "accuracy); probabilities = softmax(logits)",
        "architecture": model.arch,
        "num_classes": model.num_classes,
        "classes": model.classes,
        "preprocess": prep.describe(),
        "weights": {"which": model.weights, "epoch": model.epoch, "described": model.describe(),
                    "safetensors_keys": "net1.<state-dict key>, net2.<state-dict key> "
                                        "(dividemix.method.models.build_model(architecture, num_classes, channels))"},
        "run": {"source": model.source.name, "dataset": prep.dataset, "params": model.params,
                "metrics": model.metrics},
        "check": check,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
    }


def check_out(out: str | Path) -> Path:
    """`--out`: a new or empty folder, or an earlier export (replaced whole); anything else refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ServingError(f"--out {out}: a file; expected a folder (new, empty, or an earlier export)")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        raise ServingError(f"--out {out}: a folder with other files; expected a new or empty folder, or an earlier "
                           "export (it is replaced whole)")
    return out


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / JSON_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def export_model(model: RunModel, out: str | Path) -> dict[str, Any]:
    """Write the folder `out` (ONNX, safetensors, model.json) whole, after the onnxruntime check."""
    import onnx

    out = check_out(out)

    ensemble = Ensemble(*model.networks(torch.device("cpu"))).eval()
    images, what = check_images(model)
    exported = onnx_bytes(ensemble, images[:2], model.arch)
    check = onnx_check(exported, ensemble, images) | {"inputs": what}
    opsets = [entry.version for entry in onnx.load_from_string(exported).opset_import if entry.domain in ("", "ai.onnx")]
    info = model_json(model, check, opsets[0] if opsets else None)
    weights = safetensors_bytes(model)
    with atomic_dir(out) as folder:
        (folder / ONNX_FILE).write_bytes(exported)
        (folder / WEIGHTS_FILE).write_bytes(weights)
        (folder / JSON_FILE).write_text(json.dumps(info, indent=2, default=_plain) + "\n", encoding="utf-8")
    return info


def _plain(value: Any) -> Any:
    """JSON for numpy scalars in recorded parameters."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

