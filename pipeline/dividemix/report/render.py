"""The report's two pages, Markdown and self-contained HTML (figures as base64 PNG), and its folder."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dividemix.drawing.plots import png_data_uri
from dividemix.drawing.thumbnails import GALLERY_CSS
from dividemix.report.figures import ReportFigure
from dividemix.report.tables import RESULTS_HEADER, RESULTS_NOTE, PaperComparison, format_percent


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


@dataclass(frozen=True)
class GallerySection:
    """The samples to look at (`dividemix.judging.gallery`): thumbnails for the page, a table for Markdown."""

    html: str
    markdown: list[str]


GALLERY_NOTE = (
    "For each given (noisy) label: the samples of the final division with the lowest clean probability "
    "(red: those DivideMix distrusts or relabels) and, for contrast, the most confidently clean ones (green), "
    "with the final networks' prediction and confidence and the export's decision."
)


def render_markdown(title: str, setting: list[tuple[str, str]], results: list[tuple[str, str, str]],
                    figures: list[ReportFigure], paper: PaperComparison, gallery: GallerySection | None = None) -> str:
    lines = [f"# {title}", "", "## Setting", ""]
    lines += _md_table(("Parameter", "Value"), setting)
    lines += ["", "## Results", ""]
    lines += _md_table(RESULTS_HEADER, results)
    lines += ["", RESULTS_NOTE, "", "## Against the paper", ""]
    if paper.rows:
        lines += _md_table(paper.header, paper.rows) + [""]
    lines += [paper.note, "", "## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}](figures/{figure.name})", "", figure.caption, ""]
    if gallery is not None:
        lines += ["## Samples to look at", "", GALLERY_NOTE + " (thumbnails: index.html)", ""] + gallery.markdown + [""]
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
    return [
        "<figure>",
        f"<h3>{esc(figure.title)}</h3>",
        f'<img src="{png_data_uri(figure.png)}" alt="{esc(figure.title)}">',
        f"<figcaption>{esc(figure.caption)}</figcaption>",
        "</figure>",
    ]


def render_html(title: str, setting: list[tuple[str, str]], results: list[tuple[str, str, str]],
                figures: list[ReportFigure], paper: PaperComparison, gallery: GallerySection | None = None) -> str:
    esc = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}{GALLERY_CSS}</style>",
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
        lines += _html_table(paper.header, paper.rows, numeric=True)
    lines += [f'<p class="note">{esc(paper.note)}</p>', "<h2>Figures</h2>"]
    for figure in figures:
        lines += _html_figure(figure)
    if gallery is not None:
        lines += ['<h2 id="samples">Samples to look at</h2>', f'<p class="note">{esc(GALLERY_NOTE)}</p>', gallery.html]
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


def write_report_folder(folder: Path, markdown: str, page: str, figures: list[ReportFigure]) -> None:
    (folder / "figures").mkdir()
    for figure in figures:
        (folder / "figures" / figure.name).write_bytes(figure.png)
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    (folder / "index.html").write_text(page, encoding="utf-8")
