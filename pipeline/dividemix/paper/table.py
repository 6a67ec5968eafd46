"""The paper's table from a set of experiments: one row per data set and noise, mean ± std over seeds.

An experiment is a record of dotted parameters and the `evaluate` stage's metrics (as `dvc exp
show` lists them). Experiments that differ only in their seeds (`noise.seed`, `train.seed`) are
one cell's repeats; anything else that differs makes another row (named by what differs). The
columns are the paper's: "last" (the mean of the last 10 DivideMix epochs) first, "best" (the best
epoch, chosen on the test set: an oracle) beside it, and the paper's own number where a preset
names the cell (`presets.find_preset`) and the run is like for like with it: every parameter that
changes the figure equal to the preset's (`presets.preset_differences`); otherwise the row names the
departures instead of the paper's number. Written as Markdown, CSV and a self-contained HTML page.
"""

from __future__ import annotations

import csv
import html
import io
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dividemix.paper.preset import PROTOCOL_NAMES
from dividemix.paper.presets import CELL_KEYS, describe_departures, find_preset, preset_differences

SEED_KEYS = ("noise.seed", "train.seed")
COLUMNS = ("setting", "seeds", "last 10 (mean ± std)", "paper last (mean of its last 10 epochs)",
           "best epoch (mean ± std)", "paper best (its best epoch)", "against the paper", "experiments")
LIKE = "like for like"
NO_CELL = "no paper cell"


@dataclass(frozen=True)
class Row:
    setting: str
    experiments: tuple[str, ...]
    last10: tuple[float, ...]  # percent, one per seed that has the figure
    best: tuple[float, ...]
    paper_last: float | None
    paper_best: float | None
    # The paper's other figures for the cell (Clothing1M, WebVision): (label, the run's figure of
    # the same protocol per seed, the paper's or None when not like for like), shown in a second table.
    figures: tuple[tuple[str, tuple[float, ...], float | None], ...] = ()
    comparison: str = NO_CELL  # LIKE, NO_CELL, or "not like for like: departs in ..." (the departures)


def setting_name(params: dict[str, Any]) -> str:
    """"cifar10 sym 50%", "cifar10 file labels/CIFAR-10_human.pt [worse_label]", "folder none"."""
    mode = params.get("noise.mode")
    if mode == "file":
        noise = f"file {params.get('noise.file')} [{params.get('noise.key')}]"
    elif mode in (None, "none"):
        noise = "no noise injected"
    else:
        noise = f"{mode} {100 * float(params.get('noise.rate', 0)):g}%"
    return f"{params.get('data.dataset')} {noise}"


def _percents(records: Iterable[dict[str, Any]], key: str) -> tuple[float, ...]:
    values = (record.get(key) for record in records)
    return tuple(100 * float(v) for v in values if v is not None and not math.isnan(float(v)))


def build_rows(experiments: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[Row]:
    """Rows from (name, dotted params, metrics) records, one per group of seeds, in first-seen order."""
    groups: dict[tuple, list] = {}
    for name, params, metrics in experiments:
        key = tuple(sorted((k, repr(v)) for k, v in params.items() if k not in SEED_KEYS))
        groups.setdefault(key, []).append((name, params, metrics))
    varying = _varying_keys([dict(key) for key in groups])
    rows = []
    for key, members in sorted(groups.items(), key=lambda item: _order(item[1][0][1])):
        params = members[0][1]
        label = setting_name(params)
        extra = [f"{k}={dict(key)[k]}" for k in varying if k in dict(key)]
        if extra:
            label += " (" + ", ".join(extra) + ")"
        preset = find_preset(params) if all(k in params for k in CELL_KEYS) else None
        comparison = NO_CELL if preset is None else likeness(params, preset.name)
        like = comparison == LIKE
        metrics = [m for _, _, m in members]
        members.sort(key=lambda member: member[0])
        # A cell with its own figures compares them there, like for like; not best with best here.
        plain = preset if like and not preset.figures else None
        figures = tuple((f.label, _percents(metrics, FIGURE_KEYS[f.protocol](f.metric)), f.value if like else None)
                        for f in (preset.figures if preset else ()))
        rows.append(Row(label, tuple(n for n, _, _ in members), _percents(metrics, "test_acc_last10"),
                        _percents(metrics, "test_acc_best"),
                        plain.paper_last if plain else None, plain.paper_best if plain else None, figures, comparison))
    return rows


def likeness(params: dict[str, Any], name: str) -> str:
    """LIKE, or "not like for like (preset NAME): departs in key value (preset value), ..."."""
    departures = preset_differences(params, name)
    if not departures:
        return LIKE
    return f"not like for like (preset {name}): departs in {describe_departures(departures)}"


# The run's figure of a paper figure's protocol (presets.PaperFigure): the official Clothing1M
# protocol's best-validation ensemble, or the mean of the last 10 epochs where the paper's epoch is unsaid.
FIGURE_KEYS = {"best_val": lambda metric: "test_acc_best_val", "per_epoch": lambda metric: f"{metric}_last10"}
FIGURE_COLUMNS = ("setting", "figure",
                  "this run (mean ± std; Clothing1M: best-validation weights; WebVision: mean of its last 10 epochs)",
                  f"paper (Clothing1M: {PROTOCOL_NAMES['best_val']}; WebVision: {PROTOCOL_NAMES['per_epoch']})",
                  "against the paper")


def figure_cells(rows: list[Row]) -> list[list[str]]:
    """The second table's rows: one per paper figure of the rows that have them."""
    return [[row.setting, label, mean_std(values), _paper(paper), row.comparison]
            for row in rows for label, values, paper in row.figures]


def _order(params: dict[str, Any]) -> tuple:
    """Rows as the paper orders them: data set, noise mode, rate."""
    rate = params.get("noise.rate")
    return (str(params.get("data.dataset")), str(params.get("noise.mode")), float(rate) if rate is not None else 0.0,
            str(params.get("noise.file")), str(params.get("noise.key")))


def _varying_keys(groups: list[dict[str, str]]) -> list[str]:
    """The parameters (besides data set and noise) whose values differ between rows."""
    shown = {"data.dataset", "noise.mode", "noise.rate", "noise.file", "noise.key"}
    keys = sorted({k for group in groups for k in group} - shown)
    return [k for k in keys if len({group.get(k) for group in groups}) > 1]


def mean_std(values: tuple[float, ...]) -> str:
    """"94.21 ± 0.35" (the sample std, over n ≥ 2 seeds); one seed: the value; none: "n/a"."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cells(row: Row) -> list[str]:
    return [row.setting, str(len(row.experiments)), mean_std(row.last10), _paper(row.paper_last),
            mean_std(row.best), _paper(row.paper_best), row.comparison, " ".join(row.experiments)]


def _markdown_table(columns, body) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]


def to_markdown(rows: list[Row]) -> str:
    text = "\n".join(_markdown_table(COLUMNS, [cells(row) for row in rows])) + "\n\n" + NOTE + "\n"
    figures = figure_cells(rows)
    if figures:
        text += "\n" + "\n".join(_markdown_table(FIGURE_COLUMNS, figures)) + "\n\n" + FIGURE_NOTE + "\n"
    return text


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["setting", "seeds", "last10_mean", "last10_std", "paper_last", "best_mean", "best_std",
                     "paper_best", "against_paper", "experiments"])
    for row in rows:
        writer.writerow([row.setting, len(row.experiments), *_stats(row.last10), row.paper_last, *_stats(row.best),
                         row.paper_best, row.comparison, " ".join(row.experiments)])
    return out.getvalue()


def to_figures_csv(rows: list[Row]) -> str | None:
    """The second table as CSV (None when no row has paper figures of its own)."""
    if not any(row.figures for row in rows):
        return None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["setting", "figure", "run_mean", "run_std", "seeds", "paper", "against_paper"])
    for row in rows:
        for label, values, paper in row.figures:
            writer.writerow([row.setting, label, *_stats(values), len(values), paper, row.comparison])
    return out.getvalue()


def _stats(values: tuple[float, ...]) -> tuple[str, str]:
    if not values:
        return "", ""
    return f"{statistics.mean(values):.4f}", (f"{statistics.stdev(values):.4f}" if len(values) > 1 else "")


def to_html(rows: list[Row]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells(row)) + "</tr>" for row in rows)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>DivideMix results</title>\n'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right}td:first-child,td:last-child{text-align:left}"
        "p{color:#555}</style>\n</head>\n<body>\n<h1>DivideMix results</h1>\n"
        f"<table>\n<tr>{head}</tr>\n{body}\n</table>\n<p>{esc(NOTE)}</p>\n{_html_figures(rows)}</body>\n</html>\n"
    )


def _html_figures(rows: list[Row]) -> str:
    figures = figure_cells(rows)
    if not figures:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in FIGURE_COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in figures)
    return f"<h2>The paper's other figures</h2>\n<table>\n<tr>{head}</tr>\n{body}\n</table>\n<p>{esc(FIGURE_NOTE)}</p>\n"


NOTE = ("Test accuracy (%), mean ± sample standard deviation over the seeds of each setting. \"last 10\" is "
        "the mean of the last 10 DivideMix epochs (the paper's \"last\" in its CIFAR table); \"best epoch\" is "
        "chosen on the test set (an oracle, optimistic). Paper: the paper's number for the cell, where a preset "
        "names it and the run is like for like (every parameter that changes the figure as the preset's; data "
        "locations, seeds, workers, storage, precision and distributed.* aside); otherwise the row lists where "
        "it departs.")

FIGURE_NOTE = ("The paper's figures for Clothing1M (Table 2) and WebVision (Table 3), each beside the run's figure of "
               "the same protocol: Clothing1M's is the ensemble of each network's best-validation weights (the "
               "official protocol; the main table's columns would compare it with an oracle); WebVision's epoch is "
               "not stated by the paper (one of its log's epochs 0-80): the mean of the last 10 epochs, 71-80 with "
               "the preset's 81. A paper figure is set beside a run only like for like.")
