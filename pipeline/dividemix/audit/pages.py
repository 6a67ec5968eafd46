"""A diff as a self-contained page: its figures (base64 PNG) and tables; no script, no network."""

from __future__ import annotations

import html

import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator

from dividemix.audit.diff import DiffResult
from dividemix.audit.text import diff_header, summary_columns
from dividemix.drawing.plots import figure_png, plt, png_data_uri
from dividemix.drawing.thumbnails import GALLERY_CSS

NET_COLORS = {1: "tab:blue", 2: "tab:orange"}


def diff_figures(result: DiffResult) -> list[tuple[str, str, bytes]]:
    """(title, caption, PNG) of the diff page: sizes, overlap, movements, quality, clean probabilities."""
    summary = result.summary
    figures = [
        ("Labeled-set sizes and overlap",
         "Left: each side's labeled-set size (solid: A, dashed: B) per division network. "
         "Right: the Jaccard overlap of the two labeled sets.",
         per_net_figure(summary, [([("n_labeled_a", "-"), ("n_labeled_b", "--")], "labeled samples"),
                                  ([("jaccard", "-")], "Jaccard |A∩B| / |A∪B|")], "Labeled sets")),
        ("Samples that moved",
         "Per epoch: samples labeled in A but unlabeled in B (to_unlabeled, solid) and the reverse "
         "(to_labeled, dashed); right: the mean clean-probability shift B - A (solid) and its mean "
         "absolute value (dashed).",
         per_net_figure(summary, [([("to_unlabeled", "-"), ("to_labeled", "--")], "samples"),
                                  ([("prob_shift", "-"), ("prob_shift_abs", "--")], "clean probability, B - A")],
                        "Movements")),
    ]
    if result.truth_a or result.truth_b:
        panels = [([(f"{m}_a", "-"), (f"{m}_b", "--")], m) for m in ("precision", "recall", "auc")]
        figures.append(("Division quality against the true labels",
                        "Precision of the labeled set, recall of the truly clean samples and AUC of the clean "
                        "probability (solid: A, dashed: B).", per_net_figure(summary, panels, "Division quality")))
    if result.last:
        figures.append(("Clean probabilities, last common epoch",
                        "Each sample's clean probability in A against B at the last compared epoch (a 2-D "
                        "histogram; on the diagonal the runs agree).", clean_probability_figure(result)))
    if result.by_class is not None:
        figures.append(("Per class, last compared epoch",
                        "Samples that moved in each class (by noisy label) and the Jaccard overlap per class.",
                        per_class_figure(result.by_class)))
    return figures


def per_net_figure(summary: pd.DataFrame, panels: list, title: str) -> bytes:
    """One panel per (columns, y label), one line per network and column, against the epoch."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), dpi=100, squeeze=False)
    for ax, (columns, ylabel) in zip(axes[0], panels):
        for net in sorted(summary["net"].unique()):
            rows = summary[summary["net"] == net]
            for column, style in columns:
                ax.plot(rows["epoch"], rows[column], style, color=NET_COLORS.get(net), marker=".",
                        label=f"{column} (net {net})")
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return figure_png(fig)


def clean_probability_figure(result: DiffResult) -> bytes:
    """Per network: a 2-D histogram of each sample's clean probability in A against B."""
    fig, axes = plt.subplots(1, len(result.last), figsize=(5 * len(result.last), 4.5), dpi=100, squeeze=False)
    for ax, (net, (prob_a, prob_b)) in zip(axes[0], sorted(result.last.items())):
        # log colours: most samples sit in the corners (0, 0) and (1, 1), the movers are few
        _, _, _, image = ax.hist2d(prob_a, prob_b, bins=40, range=[[0, 1], [0, 1]], cmin=1, cmap="viridis",
                                   norm=LogNorm())
        fig.colorbar(image, ax=ax, label="samples (log scale)")
        ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
        ax.set(title=f"net {net}", xlabel="clean probability in A", ylabel="clean probability in B")
    fig.suptitle(f"Clean probabilities at epoch {result.compared[-1]}")
    fig.tight_layout()
    return figure_png(fig)


def per_class_figure(by_class: pd.DataFrame) -> bytes:
    """The last compared epoch: samples that moved per class (bars) and the Jaccard overlap per class."""
    last = by_class[by_class["epoch"] == by_class["epoch"].max()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    width = 0.4
    for net in sorted(last["net"].unique()):
        rows = last[last["net"] == net]
        offset, color = (net - 1.5) * width, NET_COLORS.get(net)
        axes[0].bar(rows["class"] + offset, rows["to_unlabeled"], width, color=color, label=f"to_unlabeled (net {net})")
        axes[0].bar(rows["class"] + offset, -rows["to_labeled"], width, color=color, alpha=0.5,
                    label=f"to_labeled, negative (net {net})")
        axes[1].bar(rows["class"] + offset, rows["jaccard"], width, color=color, label=f"net {net}")
    axes[0].set(xlabel="class (noisy label)", ylabel="samples")
    axes[1].set(xlabel="class (noisy label)", ylabel="Jaccard")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


_PAGE_CSS = """
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 2em 0; } img { max-width: 100%; } figcaption, p.note { color: #555; font-size: 0.9em; }
"""


def _html_frame(frame: pd.DataFrame) -> str:
    cells = frame.copy()
    for column in cells.columns:
        if pd.api.types.is_float_dtype(cells[column]):
            cells[column] = cells[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.4f}")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cells.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                     for row in cells.itertuples(index=False))
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def diff_html(result: DiffResult, extra: str = "") -> str:
    """A self-contained page: the comparison's figures (base64 PNG) and tables; no script, no network."""
    esc = html.escape
    title = f"Division diff: {result.name_a} vs {result.name_b}"
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{esc(title)}</title>", f"<style>{_PAGE_CSS}{GALLERY_CSS}</style>", "</head>", "<body>",
             f"<h1>{esc(title)}</h1>"]
    parts += [f'<p class="note">{esc(line)}</p>' for line in diff_header(result)]
    for caption_title, caption, png in diff_figures(result):
        parts += ["<figure>", f"<h3>{esc(caption_title)}</h3>",
                  f'<img src="{png_data_uri(png)}" alt="{esc(caption_title)}">',
                  f"<figcaption>{esc(caption)}</figcaption>", "</figure>"]
    parts += ["<h2>Per epoch and network</h2>", _html_frame(result.summary[summary_columns(result)])]
    if result.by_class is not None:
        last = result.compared[-1]
        parts += [f"<h2>Per class (noisy label), epoch {last}</h2>",
                  '<p class="note">The last compared epoch; every epoch\'s rows are in the terminal output.</p>',
                  _html_frame(result.by_class[result.by_class["epoch"] == last])]
    parts += [extra, "</body>", "</html>", ""]
    return "\n".join(parts)
