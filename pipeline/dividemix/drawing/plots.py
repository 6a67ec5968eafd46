"""matplotlib for figures written to files: the Agg backend, and PNG bytes without a version stamp.

The one figure helper of the report and the audit pages. pyplot is imported here, on the Agg
backend (no display, no GUI toolkit), and only by modules that draw.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402

DPI = 100


def figure_png(fig: plt.Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no software/version stamp in the metadata); closes the figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """A PNG as a `data:` URI, so a page embeds its figures and loads nothing."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
