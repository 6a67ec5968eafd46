"""The cleaned-label rule and the final networks' predictions: shared by `export` and `evaluate`.

With τ the run's `train.p_threshold`, p̄ the mean of the two networks' clean probabilities in the
final division, ŷ the ensemble's prediction (argmax of the sum of both networks' logits, as the
test accuracy) and c its confidence (the mean of the two softmax probabilities of ŷ):

    kept         p̄ > τ and ŷ = noisy label: cleaned_label = the noisy label;
    relabelled   p̄ <= τ and ŷ != noisy label and c > τ: cleaned_label = ŷ;
    distrusted   everything else: no cleaned label (-1).

Predictions come from checkpoints/train/last.pt loaded into the networks the run's recorded
parameters describe, over the prepared training images (eval mode, the test transform).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dividemix.files import layout

DECISIONS = ("kept", "relabelled", "distrusted")


def decide(
    noisy_label: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, clean_prob: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """The decision of each sample and its cleaned label (-1 for distrusted), as the module docstring.

    Returns (decision codes indexing DECISIONS, cleaned labels).
    """
    trusted = clean_prob > threshold
    agrees = predicted == noisy_label
    kept = trusted & agrees
    relabelled = ~trusted & ~agrees & (confidence > threshold)
    codes = np.full(len(noisy_label), DECISIONS.index("distrusted"), dtype=np.int8)
    codes[kept] = DECISIONS.index("kept")
    codes[relabelled] = DECISIONS.index("relabelled")
    cleaned = np.where(kept, noisy_label, np.where(relabelled, predicted, -1))
    return codes, cleaned


def nested_params(params: dict[str, Any], *, device: str) -> dict[str, dict[str, Any]]:
    """Dotted keys as recorded in the artifacts ({'train.lr': ...}) into params.yaml's nesting."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, name = key.split(".", 1)
        nested.setdefault(section, {})[name] = value
    nested.setdefault("train", {})["device"] = device
    return nested


def ensemble_predictions(
    root: Path, params: dict[str, Any], *, index: np.ndarray | None = None, device: str = "auto",
    checkpoint: Path | None = None, prepared: Path | None = None, noisy: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Predicted label and confidence of the training images `index` (all: None) by the final networks.

    Returns (predicted, confidence, checkpoint epoch). Paths default to the run layout under `root`.
    """
    import torch  # here: the audit's diff and trace never need it

    from dividemix.config import parse_config
    from dividemix.datasets.prepared import read_meta
    from dividemix.method.inference import eval_logits
    from dividemix.training.checkpoint import load_checkpoint
    from dividemix.training.workspace import NETS, Workspace

    checkpoint, prepared = checkpoint or root / layout.TRAIN_CHECKPOINT, prepared or root / layout.PREPARED
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: no trained networks; run the train stage first")
    nested = nested_params(params, device=device)
    # One process predicts, whatever the training was spread over (its recorded distributed.* keys
    # lack the rendezvous, which no result depends on).
    nested["distributed"] = {"processes_per_machine": 1, "machines": 1}
    dataset = nested.get("data", {}).get("dataset")
    if dataset in ("folder", "clothing1m", "webvision"):
        # The networks read the prepared store only; a stored data set's source keys (not recorded
        # by the training stages) are placeholders that satisfy the schema, never opened.
        sources = {"root": "."}
        if dataset == "folder":
            sources |= {"train_list": "-", "test_list": "-", "image_size": read_meta(prepared)["image_size"]}
        nested["data"] = sources | nested["data"]
    config = parse_config(nested, source="the run's recorded parameters")
    ws = Workspace.load(config, prepared, noisy or root / layout.NOISY_LABELS)
    state = load_checkpoint(checkpoint, ws.device)
    rows = None if index is None else torch.as_tensor(np.array(index, dtype=np.int64))  # host rows (a copy: writable)
    logits = []
    for net_id in NETS:
        net = ws.new_net(net_id)
        net.load_state_dict(state["nets"][str(net_id)])
        logits.append(eval_logits(net, ws.train_images, index=rows, batch_size=config.train.eval_batch_size))
    predicted = (logits[0] + logits[1]).argmax(1)
    probs = torch.stack([lg.softmax(1) for lg in logits]).mean(0)
    confidence = probs.gather(1, predicted[:, None])[:, 0]
    return predicted.cpu().numpy().astype(np.int64), confidence.cpu().numpy().astype(np.float32), int(state["epoch"])
