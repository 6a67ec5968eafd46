"""The samples that moved between two runs' last compared divisions, as thumbnails (`diff --html`).

A mover changed side (labeled in one run, unlabeled in the other) under a network; the page shows
those whose clean probability changed most, with both probabilities. Thumbnails come from a
prepared store holding the same training images (`dividemix.drawing.thumbnails`).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from dividemix.audit.diff import DiffResult
from dividemix.datasets.prepared import images_path
from dividemix.drawing.thumbnails import class_name, sample_card

TOP_MOVERS = 24  # per page: the largest changes of clean probability among the samples that changed side


def movers(result: DiffResult, top: int = TOP_MOVERS) -> pd.DataFrame:
    """sample_index, net, noisy_label, prob_a, prob_b, direction of the `top` largest moves."""
    frames = []
    for net, (prob_a, prob_b) in sorted(result.last.items()):
        labeled_a, labeled_b = result.last_labeled[net]
        moved = np.flatnonzero(labeled_a != labeled_b)
        frames.append(pd.DataFrame({
            "sample_index": moved, "net": net, "noisy_label": result.noisy_label[moved],
            "prob_a": prob_a[moved], "prob_b": prob_b[moved],
            "direction": np.where(labeled_a[moved], "to unlabeled", "to labeled"),
        }))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return frame
    frame["change"] = (frame["prob_b"] - frame["prob_a"]).abs()
    return frame.sort_values(["change", "sample_index", "net"], ascending=[False, True, True]).head(top)


def store_for(result: DiffResult, candidates: list[Path]) -> Path | None:
    """The first prepared folder among `candidates` whose training set has the runs' size."""
    n = None if result.noisy_label is None else len(result.noisy_label)
    for prepared in candidates:
        images = images_path(prepared, "train")
        if images.exists() and np.load(images, mmap_mode="r").shape[0] == n:
            return prepared
    return None


def movers_html(frame: pd.DataFrame, uris: dict[int, str], classes: list[str], result: DiffResult) -> str:
    epoch = result.compared[-1]
    parts = [f"<h2>Samples that moved, epoch {epoch}</h2>",
             f'<p class="note">The {len(frame)} samples that changed side under a network with the largest change '
             f"of clean probability, {html.escape(result.name_a)} → {html.escape(result.name_b)}.</p>",
             '<div class="gallery">']
    for row in frame.itertuples():
        lines = [f"#{row.sample_index} net {row.net}", f"given {class_name(classes, row.noisy_label)}", f"clean p {row.prob_a:.3f} → {row.prob_b:.3f}",
                 row.direction]
        parts.append(sample_card(uris[int(row.sample_index)], lines, "distrusted" if row.direction == "to unlabeled"
                                 else "clean"))
    parts.append("</div>")
    return "\n".join(parts)
