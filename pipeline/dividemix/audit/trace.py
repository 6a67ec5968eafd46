"""trace: one sample's history per network over all epochs (loss, normalised loss, clean
probability, labeled), as a table and a small plot."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from matplotlib.ticker import MaxNLocator

from dividemix.audit.epochs import division_epochs, read_division_file, read_division_meta, selection_of
from dividemix.audit.sources import AuditError, RunSource
from dividemix.drawing.plots import figure_png, plt

TRACE_COLUMNS = ["epoch", "net", "sample_index", "noisy_label", "loss", "loss_norm", "clean_prob", "labeled"]


def trace_samples(source: RunSource, samples: list[int]) -> pd.DataFrame:
    """Every epoch's division of `samples`, per network (TRACE_COLUMNS), one epoch file at a time.

    An index outside the training set raises AuditError naming the allowed range.
    """
    epochs = division_epochs(source)
    first, _ = read_division_file(source, epochs[0], ["sample_index"])
    index = first.column("sample_index").to_numpy()
    low, high = int(index.min()), int(index.max())
    unknown = [s for s in samples if not low <= s <= high]
    if unknown:
        raise AuditError(
            f"{source.name}: sample {', '.join(map(str, unknown))} not in the training set; allowed: {low}..{high}"
        )
    wanted = sorted(set(samples))
    read = [read_division_meta(source, epoch, TRACE_COLUMNS, samples=wanted) for epoch in epochs]
    frame = pa.concat_tables([table for table, _ in read]).to_pandas()
    metas = {epoch: meta for epoch, (_, meta) in zip(epochs, read)}
    if any(meta.get("selection") for meta in metas.values()):
        frame = with_rule(frame, metas)
    return frame.sort_values(["sample_index", "net", "epoch"], kind="stable").reset_index(drop=True)


def with_rule(frame: pd.DataFrame, metas: dict[int, dict]) -> pd.DataFrame:
    """Each row's selection rule, its cut and its quota for the sample's given class (a rule other
    than the GMM: `loss_norm` is then that rule's input, e.g. uniform_jsd's divergence)."""
    records = [selection_of(metas[int(e)], int(n)) for e, n in zip(frame["epoch"], frame["net"])]
    taken = [r.get("taken") for r in records]
    return frame.assign(
        rule=[r["rule"] for r in records],
        cut=[r.get("cut") for r in records],
        quota=[None if t is None else t[int(c)] for t, c in zip(taken, frame["noisy_label"])],
    )


def trace_plot(frame: pd.DataFrame, threshold: float) -> bytes:
    """One row per sample: clean probability (with the threshold) and normalised loss, per network."""
    samples = sorted(frame["sample_index"].unique())
    fig, axes = plt.subplots(len(samples), 2, figsize=(9, 2.6 * len(samples)), dpi=100, squeeze=False)
    colors = {1: "tab:blue", 2: "tab:orange"}
    for (ax_prob, ax_loss), sample in zip(axes, samples):
        rows = frame[frame["sample_index"] == sample]
        for net, group in rows.groupby("net", sort=True):
            ax_prob.plot(group["epoch"], group["clean_prob"], marker="o", color=colors.get(net), label=f"net {net}")
            ax_loss.plot(group["epoch"], group["loss_norm"], marker="o", color=colors.get(net), label=f"net {net}")
        ax_prob.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold}")
        ax_prob.set(title=f"sample {sample}: clean probability", xlabel="epoch", ylim=(-0.05, 1.05))
        ax_loss.set(title=f"sample {sample}: normalised loss", xlabel="epoch")
        for ax in (ax_prob, ax_loss):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    fig.tight_layout()
    return figure_png(fig)
