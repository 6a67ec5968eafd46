"""Thumbnails of training samples, read from the prepared store (originals are never re-decoded),
and the HTML that shows them: the report's and `dividemix inspect`'s gallery, `diff --html`'s movers.

Only the requested rows of train_images.npy are read (a memory map: a million-image store costs
no more than the few rows shown). Each thumbnail is a PNG data URI, so a page stays one file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dividemix.datasets.prepared import images_path, read_meta

SIDE = 72  # pixels of a thumbnail's longer side


def _as_pil(row: np.ndarray, pixel_scale: float) -> Image.Image:
    """One stored (C, H, W) uint8 row as an 8-bit image (digits store 0..16: scaled to 0..255)."""
    pixels = np.clip(row.astype(np.float32) * (255.0 / pixel_scale), 0, 255).round().astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    image = Image.fromarray(pixels)
    # tiny images (8 px digits) are enlarged without blurring; photographs are reduced smoothly
    resample = Image.Resampling.NEAREST if max(image.size) < SIDE else Image.Resampling.BILINEAR
    scale = SIDE / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)


def thumbnail_uris(prepared: Path, rows: list[int] | np.ndarray) -> dict[int, str]:
    """PNG data URIs of the training rows `rows` of the prepared folder, by row."""
    images = np.load(images_path(prepared, "train"), mmap_mode="r", allow_pickle=False)
    scale = float(read_meta(prepared)["pixel_scale"])
    uris = {}
    for row in sorted({int(r) for r in rows}):
        buffer = io.BytesIO()
        _as_pil(np.asarray(images[row]), scale).save(buffer, format="PNG", optimize=False)
        uris[row] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    del images  # closes the map
    return uris


GALLERY_CSS = """
.gallery { display: flex; flex-wrap: wrap; gap: 0.4em; margin: 0.3em 0 1em; }
.sample { border: 1px solid #ccc; padding: 0.2em; font-size: 0.75em; width: 9em; text-align: center; }
.sample img { image-rendering: pixelated; display: block; margin: 0 auto; }
.sample.distrusted { border-color: #c44; } .sample.clean { border-color: #4a4; }
"""


def class_name(classes: list[str], label) -> str:
    if pd.isna(label):
        return "?"
    label = int(label)
    named = 0 <= label < len(classes) and classes[label] != str(label)  # digits' classes are their numbers
    return f"{label} {classes[label]}" if named else str(label)


def sample_card(uri: str, lines: list[str], kind: str) -> str:
    esc = html.escape
    text = "<br>".join(esc(line) for line in lines)
    return f'<div class="sample {kind}"><img src="{uri}" alt="{esc(lines[0])}"><div>{text}</div></div>'


def gallery_html(gallery: pd.DataFrame, uris: dict[int, str], classes: list[str]) -> str:
    """Per class (noisy label): the distrusted samples, then the most confidently clean ones."""
    parts = []
    for label, rows in gallery.groupby("noisy_label", sort=True):
        parts.append(f"<h4>given label {html.escape(class_name(classes, label))}</h4><div class=\"gallery\">")
        for _, row in rows.sort_values(["group", "rank"], ascending=[False, True]).iterrows():
            lines = [f"#{int(row.sample_index)} {row.group}",
                     f"given {class_name(classes, row.noisy_label)}",
                     f"predicted {class_name(classes, row.predicted_label)} ({row.confidence:.2f})",
                     f"clean p {row.clean_prob:.3f}: {row.decision}"]
            if not pd.isna(row.true_label):
                lines.append(f"true {class_name(classes, row.true_label)}")
            parts.append(sample_card(uris[int(row.sample_index)], lines, row.group))
        parts.append("</div>")
    return "\n".join(parts)


def gallery_markdown(gallery: pd.DataFrame, classes: list[str]) -> list[str]:
    """The gallery as a Markdown table (the thumbnails themselves are in index.html)."""
    lines = ["| sample | group | given | predicted | confidence | clean p | decision | true |", "|" + "---|" * 8]
    for row in gallery.itertuples():
        lines.append(
            f"| {row.sample_index} | {row.group} | {class_name(classes, row.noisy_label)} | "
            f"{class_name(classes, row.predicted_label)} | {row.confidence:.2f} | {row.clean_prob:.3f} | "
            f"{row.decision} | {class_name(classes, row.true_label)} |"
        )
    return lines
