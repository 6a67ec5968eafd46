"""The report: one self-contained HTML page and one Markdown file with the run's figures.

Reads the artifacts, the truth (as evaluation does: to split the losses into truly clean and truly
noisy samples), the metrics of `evaluate` and the noise summary, and writes into `out`:

    index.html          every figure embedded as a base64 PNG; no external CSS, JS or network
    report.md           the same content; figures as relative links
    figures/*.png       the figures report.md links to

The folder is built under a temporary name and swapped in whole (`dividemix.io.atomic_dir`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402

from dividemix.evaluation import RunArtifacts, accuracy_curves, division_quality, known_clean_mask  # noqa: E402
from dividemix.io import atomic_dir  # noqa: E402
from dividemix.presets import find_preset, preset_differences  # noqa: E402

DPI = 100
HIST_BINS = 50
HIST_NET = 1  # the loss histograms show network 1's division (the one that trains network 2)
MAX_STEP_POINTS = 2000  # the per-step loss curves are averaged down to about this many points per network
NOT_APPLICABLE = "—"  # a cell that has no meaning (e.g. the baseline has no division)
UNDEFINED = "n/a"  # a metric that is undefined for this run (null in the metrics JSON)

METRIC_KEYS = (
    "test_acc_best",
    "test_acc_last",
    "test_acc_last10",
    "ce_test_acc_best",
    "ce_test_acc_last",
    "division_auc_last",
    "division_precision_last",
    "division_recall_last",
    "noise_rate_actual",
)
PARAM_KEYS = (  # the keys the report prints; with them, `presets.find_preset` finds the run's paper cell
    "data.dataset",
    "noise.mode",
    "noise.rate",
    "noise.seed",
    "noise.file",
    "noise.key",
    "model.arch",
    "train.protocol",
    "train.epochs",
    "train.warmup_epochs",
    "train.lambda_u",
    "train.p_threshold",
    "train.loss_history",
)
NOISE_SUMMARY_KEYS = ("dataset", "mode", "rate", "seed", "n_train", "n_wrong", "noise_rate_actual")

COLORS = {"dividemix": "black", "net1": "tab:blue", "net2": "tab:orange", "baseline": "tab:red"}
CLEAN_COLOR, NOISY_COLOR = "tab:blue", "tab:red"


# ------------------------------------------------------------------------------------ inputs
def load_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; a missing or malformed file raises with a one-line message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {what} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def _require(mapping: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise ValueError(f"{what}: missing {', '.join(missing)}")


def _check_noise_summary(params: dict[str, Any], summary: dict[str, Any]) -> None:
    """The noise summary must describe the noise the parameters ask for (a stale file is refused)."""
    for key in ("dataset", "mode", "rate", "seed"):
        param = "data.dataset" if key == "dataset" else f"noise.{key}"
        if summary[key] != params[param]:
            raise ValueError(
                f"noise summary: {key} is {summary[key]!r} but {param} is {params[param]!r}; rerun the noise stage"
            )


# -------------------------------------------------------------------------------- formatting
def format_percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals; None (or NaN) is 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNDEFINED
    return f"{100.0 * value:.2f}%"


def setting_rows(params: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows describing the run: data, noise, model and the DivideMix parameters."""
    epochs, warmup = params["train.epochs"], params["train.warmup_epochs"]
    return [
        ("Data set (data.dataset)", f"{params['data.dataset']} ({summary['n_train']} training samples)"),
        ("Noise mode (noise.mode)", str(params["noise.mode"])),
        ("Noise rate (noise.rate)", format_percent(params["noise.rate"])),
        ("Noise seed (noise.seed)", str(params["noise.seed"])),
        (
            "Actual noise rate (wrong labels)",
            f"{format_percent(summary['noise_rate_actual'])} ({summary['n_wrong']} of {summary['n_train']})"
            if summary["noise_rate_actual"] is not None else "unknown (the training truth is not known)",
        ),
        *([("Noisy labels (noise.file, noise.key)", f"{params['noise.file']}, key {params['noise.key']}")]
          if params["noise.mode"] == "file" else []),
        ("Model (model.arch)", str(params["model.arch"])),
        ("Training protocol (train.protocol)", str(params["train.protocol"])),
        ("Epochs (train.epochs)", f"{epochs} ({warmup} warm-up + {epochs - warmup} DivideMix)"),
        ("Warm-up epochs (train.warmup_epochs)", str(warmup)),
        ("Unlabeled loss weight λu (train.lambda_u)", str(params["train.lambda_u"])),
        ("Clean probability threshold τ (train.p_threshold)", str(params["train.p_threshold"])),
        ("Epochs of loss history for the mixture (train.loss_history)", str(params["train.loss_history"])),
    ]


RESULTS_HEADER = ("", "DivideMix", "Cross-entropy baseline")


def results_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """DivideMix against the baseline, as percentages (test accuracies; the last epoch's division)."""
    pct = format_percent
    return [
        ("Best test accuracy", pct(metrics["test_acc_best"]), pct(metrics["ce_test_acc_best"])),
        ("Last test accuracy", pct(metrics["test_acc_last"]), pct(metrics["ce_test_acc_last"])),
        ("Mean test accuracy, last 10 epochs", pct(metrics["test_acc_last10"]), NOT_APPLICABLE),
        ("Division AUC, last epoch", pct(metrics["division_auc_last"]), NOT_APPLICABLE),
        ("Division precision, last epoch", pct(metrics["division_precision_last"]), NOT_APPLICABLE),
        ("Division recall, last epoch", pct(metrics["division_recall_last"]), NOT_APPLICABLE),
        # With a clean validation set: the ensemble of each network's best-validation weights.
        *([("Test accuracy of the best-validation weights", pct(metrics["test_acc_best_val"]), NOT_APPLICABLE)]
          if metrics.get("test_acc_best_val") is not None else []),
    ]


RESULTS_NOTE = (
    "DivideMix accuracies are those of the ensemble (the sum of both networks' logits). Division "
    "measures are the mean over both networks: precision is the fraction of the labeled set that is "
    "truly clean, recall the fraction of the truly clean samples that were labeled, AUC that of the "
    f"clean probability for the true clean mask. {UNDEFINED}: undefined for this run (e.g. the AUC "
    f"when no label is wrong); {NOT_APPLICABLE}: does not apply."
)


NO_PAPER_CELL = "No paper cell for this setting (the paper reports CIFAR-10/100 sym 20-90% and asym 40%, " \
    "CIFAR-N, Clothing1M and WebVision)."
PAPER_HEADER = ("", "This run", "Paper")


@dataclass(frozen=True)
class PaperComparison:
    """The paper's number for the run's cell beside the run's own, or a note that there is none."""

    preset: str | None
    rows: list[tuple[str, str, str]]
    note: str


def _paper_percent(value: float | None) -> str:
    return "not reported" if value is None else f"{value:.2f}%"


def paper_comparison(params: dict[str, Any], metrics: dict[str, Any]) -> PaperComparison:
    """Best and last of this run against the paper's cell (`presets.find_preset`), when there is one.

    The paper's "last" is the mean of the last 10 epochs: compared with `test_acc_last10`.
    """
    preset = find_preset(params)
    if preset is None:
        return PaperComparison(None, [], NO_PAPER_CELL)
    rows = [
        ("Best test accuracy", format_percent(metrics["test_acc_best"]), _paper_percent(preset.paper_best)),
        ("Last: mean test accuracy of the last 10 epochs", format_percent(metrics["test_acc_last10"]),
         _paper_percent(preset.paper_last)),
    ]
    note = f"Paper cell: preset {preset.name} ({preset.description}); `dividemix preset show {preset.name}`."
    differences = preset_differences(params, preset.name)
    if differences:
        listed = ", ".join(f"{key} {value} (preset {wanted})" for key, value, wanted in differences)
        note += f" This run departs from the preset in: {listed}."
    else:
        note += " This run uses the preset's values for every parameter the report reads."
    return PaperComparison(preset.name, rows, note)


# ----------------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class ReportFigure:
    name: str  # file name under figures/
    title: str
    caption: str
    png: bytes


def figure_png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes (no software/version stamp in the metadata); closes the figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _mark_warmup_end(ax: plt.Axes, x: float) -> None:
    ax.axvline(x, color="gray", linestyle="--", linewidth=1, label="end of warm-up")


def plot_accuracy_curves(curves: pd.DataFrame, warmup_epochs: int) -> bytes:
    """Test accuracy per epoch: the ensemble, each network and the baseline."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=DPI)
    labels = {"dividemix": "DivideMix (ensemble)", "net1": "net 1", "net2": "net 2", "baseline": "CE baseline"}
    for column, label in labels.items():
        data = curves[["epoch", column]].dropna()
        width = 2.0 if column == "dividemix" else 1.2
        ax.plot(data["epoch"], 100 * data[column], marker=".", color=COLORS[column], linewidth=width, label=label)
    _mark_warmup_end(ax, warmup_epochs - 0.5)
    ax.set(title="Test accuracy per epoch", xlabel="epoch", ylabel="test accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return figure_png(fig)


def plot_division_quality(quality: pd.DataFrame, n_clean: int | None) -> bytes:
    """Per DivideMix epoch and network: AUC, precision, recall of the division and the labeled-set size."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=DPI, sharex=True)
    panels = [("auc", "AUC (%)"), ("precision", "precision (%)"), ("recall", "recall (%)"), ("n_labeled", "samples")]
    titles = {"auc": "Division AUC", "precision": "Precision of the labeled set",
              "recall": "Recall of the clean samples", "n_labeled": "Labeled-set size"}
    for ax, (column, ylabel) in zip(axes.ravel(), panels):
        scale = 1 if column == "n_labeled" else 100
        for net, group in quality.groupby("net", sort=True):
            ax.plot(group["epoch"], scale * group[column], marker="o", color=COLORS[f"net{net}"],
                    label=f"division by net {net}")
        if column == "n_labeled" and n_clean is not None:
            ax.axhline(n_clean, color="gray", linestyle=":", label="truly clean samples")
        if quality[column].isna().all():
            ax.text(0.5, 0.5, "undefined for this run", transform=ax.transAxes, ha="center", va="center")
        ax.set(title=titles[column], ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return figure_png(fig)


def _gaussian(x: np.ndarray, mean: float, variance: float, weight: float) -> np.ndarray:
    return weight * np.exp(-((x - mean) ** 2) / (2 * variance)) / np.sqrt(2 * np.pi * variance)


def plot_loss_histogram(loss_norm: np.ndarray, is_clean: np.ndarray | None, mixture: pd.DataFrame, epoch: int) -> bytes:
    """Normalised losses of truly clean and truly noisy samples, with the mixture's weighted components.

    The histograms are scaled by the number of all samples (not of each group), so each group's
    area is its share of the data and is comparable with its component's weight.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=DPI)
    low, high = min(0.0, float(loss_norm.min())), max(1.0, float(loss_norm.max()))
    bins = np.linspace(low, high, HIST_BINS + 1)
    per_sample = 1.0 / (len(loss_norm) * (bins[1] - bins[0]))
    groups = ((is_clean, CLEAN_COLOR, "truly clean"), (~is_clean, NOISY_COLOR, "truly noisy")) if is_clean is not None \
        else ((np.ones(len(loss_norm), dtype=bool), "gray", "all samples (true labels unknown)"),)
    for mask, color, label in groups:
        values = loss_norm[mask]
        ax.hist(values, bins=bins, weights=np.full(len(values), per_sample), color=color, alpha=0.45,
                label=f"{label} ({len(values)})")
    x = np.linspace(low, high, 400)
    total = np.zeros_like(x)
    for row in mixture.sort_values("mean").itertuples():
        density = _gaussian(x, row.mean, row.variance, row.weight)
        total += density
        name, color = ("clean", CLEAN_COLOR) if row.clean else ("noisy", NOISY_COLOR)
        ax.plot(x, density, color=color, linewidth=2,
                label=f"GMM {name} component (mean {row.mean:.3f}, weight {row.weight:.2f})")
    ax.plot(x, total, color="black", linewidth=1, linestyle="--", label="GMM mixture")
    ax.set(title=f"Epoch {epoch}: normalised training loss (net {HIST_NET}) and its fitted mixture",
           xlabel="normalised loss (the mixture's input)", ylabel="density (share of samples per unit loss)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


def step_positions(losses: pd.DataFrame) -> pd.Series:
    """Each step's position in epochs: epoch + step / (steps of that network in that epoch)."""
    steps = losses.groupby(["epoch", "net"])["step"].transform("size")
    return losses["epoch"] + losses["step"] / steps


def plot_step_losses(losses: pd.DataFrame, warmup_epochs: int) -> bytes:
    """loss_x, loss_u and the penalty of every training step, per network (averaged when long)."""
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), dpi=DPI, sharex=True)
    losses = losses.assign(position=step_positions(losses))
    panels = [("loss_x", "labeled loss Lx (cross-entropy in warm-up)"), ("loss_u", "unlabeled loss Lu"),
              ("penalty", "penalty (prior; confidence in warm-up)")]
    window = 1
    for net, group in losses.groupby("net", sort=True):
        group = group.sort_values(["epoch", "step"])
        window = max(1, len(group) // MAX_STEP_POINTS)
        binned = group.groupby(np.arange(len(group)) // window).mean(numeric_only=True)
        for ax, (column, _) in zip(axes, panels):
            ax.plot(binned["position"], binned[column], color=COLORS[f"net{net}"], linewidth=1, label=f"net {net}")
    for ax, (column, title) in zip(axes, panels):
        _mark_warmup_end(ax, warmup_epochs)
        ax.set(title=title, ylabel=column)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    averaged = f" (means over {window} steps)" if window > 1 else ""
    axes[-1].set_xlabel(f"epoch (steps as fractions of an epoch){averaged}")
    fig.tight_layout()
    return figure_png(fig)


def histogram_epochs(epochs: list[int]) -> list[int]:
    """The first DivideMix epoch, a middle one and the last (without repeats)."""
    epochs = sorted(epochs)
    if not epochs:
        return []
    return sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})


def _net_divisions(run: RunArtifacts, epochs: list[int], net: int) -> pd.DataFrame:
    """loss_norm of one network's divisions for a few epochs (only those files' rows are read)."""
    where = (ds.field("net") == net) & ds.field("epoch").isin(epochs)
    return run.divisions(columns=["epoch", "sample_index", "loss_norm"], filter=where)


def loss_histogram_figures(run: RunArtifacts, clean: np.ndarray | None) -> list[ReportFigure]:
    mixtures = run.mixtures()
    mixtures = mixtures[mixtures["net"] == HIST_NET]
    epochs = histogram_epochs(mixtures["epoch"].unique().tolist())
    divisions = _net_divisions(run, epochs, HIST_NET)
    figures = []
    for epoch in epochs:
        rows = divisions[divisions["epoch"] == epoch]
        png = plot_loss_histogram(
            rows["loss_norm"].to_numpy(), None if clean is None else clean[rows["sample_index"].to_numpy()],
            mixtures[mixtures["epoch"] == epoch], epoch,
        )
        caption = (
            f"Epoch {epoch}: each training sample's normalised loss under network {HIST_NET} (the input of its "
            "two-component Gaussian mixture), split into truly clean and truly noisy samples, with the fitted "
            "components weighted by their mixing weights (as Figure 2 of the paper)."
        )
        figures.append(ReportFigure(f"loss_hist_epoch_{epoch:03d}.png", f"Loss distribution, epoch {epoch}", caption, png))
    return figures


def report_figures(run: RunArtifacts, clean: np.ndarray | None, warmup_epochs: int) -> list[ReportFigure]:
    curves = accuracy_curves(run)
    quality = division_quality(run, clean)
    figures = [
        ReportFigure(
            "accuracy.png", "Test accuracy",
            "Test accuracy per epoch: the DivideMix ensemble (sum of both networks' logits), each network and the "
            "cross-entropy baseline. The dashed line marks the end of warm-up.",
            plot_accuracy_curves(curves, warmup_epochs),
        ),
        ReportFigure(
            "division.png", "Division quality",
            "Each DivideMix epoch's division against the true labels, for the division each network's losses made: "
            "AUC of the clean probability, precision of the labeled set, recall of the clean samples, and the "
            "labeled-set size (dotted: the number of truly clean samples).",
            plot_division_quality(quality, None if clean is None else int(clean.sum())),
        ),
    ]
    figures += loss_histogram_figures(run, clean)
    figures.append(
        ReportFigure(
            "step_losses.png", "Training losses per step",
            "Per-step losses of each network: Lx (cross-entropy during warm-up, the mixed labeled loss after), "
            "Lu (unlabeled loss, before its weight λu) and the penalty.",
            plot_step_losses(run.losses(), warmup_epochs),
        )
    )
    return figures


# ------------------------------------------------------------------------------------- pages
def report_title(params: dict[str, Any]) -> str:
    return (
        f"DivideMix on {params['data.dataset']}: {params['noise.mode']} noise, "
        f"rate {format_percent(params['noise.rate'])}"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(title: str, setting: list[tuple[str, str]], results: list[tuple[str, str, str]],
                    figures: list[ReportFigure], paper: PaperComparison) -> str:
    lines = [f"# {title}", "", "## Setting", ""]
    lines += _md_table(("Parameter", "Value"), setting)
    lines += ["", "## Results", ""]
    lines += _md_table(RESULTS_HEADER, results)
    lines += ["", RESULTS_NOTE, "", "## Against the paper", ""]
    if paper.rows:
        lines += _md_table(PAPER_HEADER, paper.rows) + [""]
    lines += [paper.note, "", "## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}](figures/{figure.name})", "", figure.caption, ""]
    return "\n".join(lines)


_CSS = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 2em 0; }
img { max-width: 100%; }
figcaption, p.note { color: #555; font-size: 0.9em; }
"""


def _html_table(header: tuple[str, ...] | None, rows: list[tuple[str, ...]], *, numeric: bool) -> list[str]:
    """Rows headed by their first cell; `numeric` right-aligns the other cells."""
    esc = html.escape
    td = '<td class="num">' if numeric else "<td>"
    lines = ["<table>"]
    if header:
        lines.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for first, *rest in rows:
        lines.append(f"<tr><th>{esc(first)}</th>" + "".join(f"{td}{esc(c)}</td>" for c in rest) + "</tr>")
    lines.append("</table>")
    return lines


def _html_figure(figure: ReportFigure) -> list[str]:
    esc = html.escape
    data = base64.b64encode(figure.png).decode("ascii")
    return [
        "<figure>",
        f"<h3>{esc(figure.title)}</h3>",
        f'<img src="data:image/png;base64,{data}" alt="{esc(figure.title)}">',
        f"<figcaption>{esc(figure.caption)}</figcaption>",
        "</figure>",
    ]


def render_html(title: str, setting: list[tuple[str, str]], results: list[tuple[str, str, str]],
                figures: list[ReportFigure], paper: PaperComparison) -> str:
    esc = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        "<h2>Setting</h2>",
    ]
    lines += _html_table(None, setting, numeric=False)
    lines.append("<h2>Results</h2>")
    lines += _html_table(RESULTS_HEADER, results, numeric=True)
    lines += [f'<p class="note">{esc(RESULTS_NOTE)}</p>', "<h2>Against the paper</h2>"]
    if paper.rows:
        lines += _html_table(PAPER_HEADER, paper.rows, numeric=True)
    lines += [f'<p class="note">{esc(paper.note)}</p>', "<h2>Figures</h2>"]
    for figure in figures:
        lines += _html_figure(figure)
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


def write_report_folder(folder: Path, markdown: str, page: str, figures: list[ReportFigure]) -> None:
    (folder / "figures").mkdir()
    for figure in figures:
        (folder / "figures" / figure.name).write_bytes(figure.png)
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    (folder / "index.html").write_text(page, encoding="utf-8")


def build_report(
    *,
    config_params: dict[str, Any],
    run: RunArtifacts,
    prepared: Path,
    noisy: Path,
    metrics: dict[str, Any],
    noise_summary: dict[str, Any],
    out: Path,
) -> None:
    """Write the report folder `out` (index.html, report.md, figures/), whole or not at all.

    `config_params` maps the dotted keys of `PARAM_KEYS` to their values (as `config.select` gives
    them); `metrics` is the `evaluate` stage's JSON, `noise_summary` the `noise` stage's. Inputs
    are checked before anything is drawn; a problem raises ValueError (or ArtifactError).
    """
    _require(config_params, PARAM_KEYS, "parameters")
    _require(metrics, METRIC_KEYS, "metrics")
    _require(noise_summary, NOISE_SUMMARY_KEYS, "noise summary")
    _check_noise_summary(config_params, noise_summary)

    clean = known_clean_mask(prepared, noisy)  # None: a folder data set, whose truth is unknown
    figures = report_figures(run, clean, int(config_params["train.warmup_epochs"]))
    title = report_title(config_params)
    setting = setting_rows(config_params, noise_summary)
    results = results_rows(metrics)
    paper = paper_comparison(config_params, metrics)
    markdown = render_markdown(title, setting, results, figures, paper)
    page = render_html(title, setting, results, figures, paper)
    with atomic_dir(out) as folder:
        write_report_folder(folder, markdown, page, figures)
