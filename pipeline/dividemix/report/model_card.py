"""The report's model card: what the trained model is, what it was trained on, how well it does,
where it departs from the paper, and how to load it without this package.

Made from what the report already reads (the parameters, the prepared meta.json, the epochs'
records, evaluate's metrics, the noise summary): no network is loaded here. Appended to both pages
(`with_model_card`) as its own section, so the rest of the report is untouched.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from dividemix.report.tables import format_percent

# The exported model's loading, as docs/model.md shows it (the input is described by model.json).
LOADING = """\
dividemix export-model --out model     # model.onnx, weights.safetensors, model.json
python - <<'EOF'
import json, numpy as np, onnxruntime as ort
info = json.load(open("model/model.json"))
pre = info["preprocess"]                 # resize/crop, mean/std, pixel_scale, input size
session = ort.InferenceSession("model/model.onnx")
pixels = np.zeros([1] + pre["input_size"], np.uint8)   # your images: (n, C, S, S) uint8, as pre says
scale = pre["pixel_scale"]
mean = np.array(pre["mean"], np.float32)[:, None, None] * scale
std = np.array(pre["std"], np.float32)[:, None, None] * scale
probabilities = session.run(["probabilities"], {"images": (pixels - mean) / std})[0]
print([info["classes"][c] for c in probabilities.argmax(1)])
EOF"""

DEPARTURES = (
    "Every random draw is seeded (the official code leaves numpy and the mixture unseeded).",
    "train.epochs counts every epoch, warm-up included (the official num_epochs is one fewer: its loop "
    "runs num_epochs + 1).",
    "An empty labeled or unlabeled set skips or shrinks a step instead of crashing; constant losses "
    "normalise to zeros.",
    "The confidence penalty and the loss-history window are parameters, never inferred from the noise's name.",
    "Sharpening and the confidence penalty are computed in log space (the same values, no 0/0).",
)


@dataclass(frozen=True)
class ModelCard:
    rows: list[tuple[str, str]]
    departures: list[str]

    def markdown(self) -> list[str]:
        lines = ["## Model card", "", "| | |", "|---|---|"]
        lines += [f"| {what} | {value.replace('|', chr(92) + '|')} |" for what, value in self.rows]
        lines += ["", "Departures from the paper:", ""] + [f"- {d}" for d in self.departures]
        lines += ["", "Loading the exported model (no DivideMix code needed; docs/model.md):", "", "```", LOADING, "```", ""]
        return lines

    def html(self) -> list[str]:
        esc = html.escape
        lines = ['<h2 id="model-card">Model card</h2>', "<table>"]
        lines += [f"<tr><th>{esc(what)}</th><td>{esc(value)}</td></tr>" for what, value in self.rows]
        lines += ["</table>", "<p>Departures from the paper:</p>", "<ul>"]
        lines += [f"<li>{esc(d)}</li>" for d in self.departures] + ["</ul>"]
        lines += ["<p>Loading the exported model (no DivideMix code needed; docs/model.md):</p>",
                  f"<pre><code>{esc(LOADING)}</code></pre>"]
        return lines


def model_card(params: dict[str, Any], meta: dict[str, Any], epochs, metrics: dict[str, Any],
               noise: dict[str, Any]) -> ModelCard:
    """The card of one run: `epochs` is the run's epochs table (warm-up and DivideMix rows)."""
    shape = "x".join(str(d) for d in meta["image_shape"][1:])
    size = meta.get("crop_size") or meta["image_shape"][-1]
    classes = list(meta["classes"])
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    wrong = (f"{format_percent(noise['noise_rate_actual'])} of the training labels are wrong ({noise['n_wrong']} of "
             f"{noise['n_train']})" if noise.get("noise_rate_actual") is not None else "the training truth is unknown")
    rows = [
        ("Model", f"two {params['model.arch']} networks co-trained by DivideMix; the prediction is their ensemble "
                  "(argmax of the sum of their logits, as the test accuracy)"),
        ("Data", f"{meta['dataset']}: {meta['n_train']} training images (noisy labels), {meta['n_test']} test"
                 + (f", {meta['n_val']} validation" if meta.get("n_val") else "")
                 + f" images; stored {shape}, input {meta['image_shape'][0]}x{size}x{size}; classes {shown}"),
        ("Noise", f"{params['noise.mode']} at rate {format_percent(params['noise.rate'])} (seed {params['noise.seed']}); {wrong}"),
        ("Division (final epoch)", division_summary(epochs, metrics)),
        ("Test accuracy", accuracy_summary(metrics)),
        ("Training", f"{params['train.epochs']} epochs ({params['train.warmup_epochs']} warm-up), "
                     f"protocol {params['train.protocol']}, τ = {params['train.p_threshold']}, λu = {params['train.lambda_u']}"),
    ]
    departures = list(DEPARTURES)
    if meta["dataset"] == "digits":
        departures.append("The digits are not one of the paper's data sets: 8x8 digits and cnn_small (the paper: CIFAR "
                          "and PreAct ResNet-18); the default schedule is 30 epochs with a 5-epoch ramp of λu, not 300 and 16.")
    departures.append("The full list: README, 'The algorithm, and where it departs from the reference'.")
    return ModelCard(rows, departures)


def division_summary(epochs, metrics: dict[str, Any]) -> str:
    trained = epochs[epochs["phase"] != "warmup"] if "phase" in epochs else epochs.iloc[0:0]
    if trained.empty:
        return "no DivideMix epoch yet"
    last = trained.iloc[-1]
    counts = ["none (skipped)" if last[f"labeled_by_net{i}"] is None or last[f"labeled_by_net{i}"] != last[f"labeled_by_net{i}"]
              else str(int(last[f"labeled_by_net{i}"])) for i in (1, 2)]
    text = f"epoch {int(last['epoch'])}: net1's losses labeled {counts[0]} samples clean, net2's {counts[1]}"
    if metrics.get("division_auc_last") is not None:
        text += (f"; against the truth: AUC {metrics['division_auc_last']:.4f}, precision "
                 f"{format_percent(metrics.get('division_precision_last'))}, recall "
                 f"{format_percent(metrics.get('division_recall_last'))}")
    if metrics.get("export_cleaned_n") is not None:
        text += f"; cleaned label set: {metrics['export_cleaned_n']} samples"
        if metrics.get("export_cleaned_accuracy") is not None:
            text += f", {format_percent(metrics['export_cleaned_accuracy'])} of them correct"
    return text


def accuracy_summary(metrics: dict[str, Any]) -> str:
    parts = [f"last 10 epochs {format_percent(metrics.get('test_acc_last10'))}",
             f"final epoch {format_percent(metrics.get('test_acc_last'))}",
             f"best epoch {format_percent(metrics.get('test_acc_best'))} (chosen on the test set)"]
    if metrics.get("test_acc_best_val") is not None:
        parts.append(f"best-validation weights {format_percent(metrics['test_acc_best_val'])}")
    parts.append(f"cross-entropy baseline final {format_percent(metrics.get('ce_test_acc_last'))}")
    return "; ".join(parts)


def with_model_card(markdown: str, page: str, card: ModelCard) -> tuple[str, str]:
    """Both pages with the card as their last section."""
    markdown = markdown.rstrip("\n") + "\n\n" + "\n".join(card.markdown())
    head, tail = page.rsplit("</body>", 1)
    return markdown, head + "\n".join(card.html()) + "\n</body>" + tail
