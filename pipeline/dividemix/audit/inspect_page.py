"""`dividemix inspect`: one self-contained page of the samples a run distrusts, relabels or trusts most.

It shows the gallery the `evaluate` stage wrote (artifacts/gallery.parquet: per class the lowest and
the highest final clean probabilities, the final networks' predictions, the export's decisions) as
thumbnails read from the run's prepared store. Nothing is recomputed: no network is loaded.
"""

from __future__ import annotations

import html
from pathlib import Path

from dividemix.audit.sources import AuditError
from dividemix.datasets.prepared import images_path, read_meta
from dividemix.drawing.thumbnails import GALLERY_CSS, gallery_html, thumbnail_uris
from dividemix.files import artifacts, layout

_CSS = "body { font-family: sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; color: #222; }" \
       " p.note { color: #555; font-size: 0.9em; }"


def inspect_html(root: Path, classes: list[int] | None = None) -> str:
    """The page for the run at `root` (a pipeline root), optionally only the given noisy labels."""
    gallery_file, prepared = root / layout.GALLERY, root / layout.PREPARED
    for needed, stage in ((gallery_file, "evaluate"), (images_path(prepared, "train"), "download")):
        if not needed.exists():
            raise AuditError(f"{needed}: not found; run the {stage} stage first (dvc repro)")
    gallery = artifacts.read_table(gallery_file, "gallery")
    if classes is not None:
        gallery = gallery[gallery["noisy_label"].isin(classes)]
        if gallery.empty:
            raise AuditError(f"--class {','.join(map(str, classes))}: no such class in {gallery_file}")
    meta = read_meta(prepared)
    uris = thumbnail_uris(prepared, gallery["sample_index"].to_numpy())
    counts = gallery.groupby("decision").size().to_dict()
    title = f"Samples to look at: {meta['dataset']} ({root.resolve().name})"
    esc = html.escape
    note = (f"{len(gallery)} samples of {gallery['noisy_label'].nunique()} classes from {layout.GALLERY}: per given "
            "label the lowest final clean probabilities (red) and the highest (green); decisions "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".")
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>{esc(title)}</title>", f"<style>{_CSS}{GALLERY_CSS}</style>", "</head>", "<body>",
                      f"<h1>{esc(title)}</h1>", f'<p class="note">{esc(note)}</p>',
                      gallery_html(gallery, uris, list(meta["classes"])), "</body>", "</html>", ""])
