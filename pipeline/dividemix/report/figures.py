"""The report's figures: accuracy curves, division quality, Figure-2-style loss histograms with
the fitted mixture, and the per-step losses. Each is drawn from the artifacts as PNG bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from matplotlib.ticker import MaxNLocator

from dividemix.drawing.plots import DPI, figure_png, plt
from dividemix.judging.evaluation import RunArtifacts, accuracy_curves, division_quality
from dividemix.judging.truth import Truth

HIST_BINS = 50
HIST_NET = 1  # the loss histograms show network 1's division (the one that trains network 2)
MAX_STEP_POINTS = 2000  # the per-step loss curves are averaged down to about this many points per network
COLORS = {"dividemix": "black", "net1": "tab:blue", "net2": "tab:orange", "baseline": "tab:red"}
CLEAN_COLOR, NOISY_COLOR = "tab:blue", "tab:red"


@dataclass(frozen=True)
class ReportFigure:
    name: str  # file name under figures/
    title: str
    caption: str
    png: bytes


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
    """`clean`: the full truth's clean mask (a verified subset is too small to split histograms)."""
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


def report_figures(run: RunArtifacts, truth: Truth | None, warmup_epochs: int) -> list[ReportFigure]:
    curves = accuracy_curves(run)
    quality = division_quality(run, truth)
    full = truth is not None and truth.source == "full"
    basis = ("the true labels" if full else f"the {truth.n_known} verified labels (data.truth_list)"
             if truth is not None else "the true labels (unknown for this data set: sizes only)")
    figures = [
        ReportFigure(
            "accuracy.png", "Test accuracy",
            "Test accuracy per epoch: the DivideMix ensemble (sum of both networks' logits), each network and the "
            "cross-entropy baseline. The dashed line marks the end of warm-up.",
            plot_accuracy_curves(curves, warmup_epochs),
        ),
        ReportFigure(
            "division.png", "Division quality",
            f"Each DivideMix epoch's division against {basis}, for the division each network's losses made: "
            "AUC of the clean probability, precision of the labeled set, recall of the clean samples, and the "
            "labeled-set size (dotted: the number of truly clean samples).",
            plot_division_quality(quality, int(truth.clean.sum()) if full else None),
        ),
    ]
    figures += loss_histogram_figures(run, truth.clean if full else None)
    figures.append(
        ReportFigure(
            "step_losses.png", "Training losses per step",
            "Per-step losses of each network: Lx (cross-entropy during warm-up, the mixed labeled loss after), "
            "Lu (unlabeled loss, before its weight λu) and the penalty.",
            plot_step_losses(run.losses(), warmup_epochs),
        )
    )
    return figures
