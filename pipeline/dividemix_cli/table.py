"""`dividemix table`: experiments (by name, by prefix, or all) in the paper's layout.

Rows are settings (data set and noise, plus whatever else differs between rows), the seeds of a
setting are pooled: "last 10" and "best epoch" as mean ± std over them, the paper's number beside
each where a preset names the cell and the run is like for like with it (else the row lists where it
departs: `dividemix.paper.presets.preset_differences`). Printed as Markdown; `--out DIR` also writes table.md,
table.csv and table.html there (and figures.csv: the paper's Clothing1M and WebVision figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dividemix_cli.errors import CliError
from dividemix_cli.flows import _repo, _repo_argument


def register(subparsers) -> None:
    table = subparsers.add_parser(
        "table", help="experiments as the paper's table: mean ± std over seeds, the paper's number beside "
        "like-for-like runs",
        description=__doc__.split("\n\n")[0],
    )
    table.add_argument("names", nargs="*", metavar="NAME", help="experiments to include (default: all)")
    table.add_argument("--prefix", help="include the experiments whose name starts with this")
    _repo_argument(table)
    table.add_argument("--out", type=Path, help="also write table.md, table.csv and table.html into this folder")
    table.set_defaults(func=table_command)


def table_command(args: argparse.Namespace) -> int:
    repo = _repo(args.repo)
    from dividemix.files.atomic import write_text_atomic
    from dividemix.paper import table as results_table
    from dividemix_flows.experiments import shown_experiments

    experiments = shown_experiments(repo)
    if args.names:
        missing = sorted(set(args.names) - {e.name for e in experiments})
        if missing:
            raise CliError(f"no experiment named {', '.join(missing)} in {repo} (dvc exp show lists them)")
        experiments = [e for e in experiments if e.name in args.names]
    if args.prefix:
        experiments = [e for e in experiments if e.name.startswith(args.prefix)]
    if not experiments:
        raise CliError("no experiment to tabulate (dvc exp show lists them; run some with dividemix sweep --seeds N)")
    rows = results_table.build_rows([(e.name, e.params, e.metrics) for e in experiments])
    markdown = results_table.to_markdown(rows)
    print(markdown, end="")
    if args.out is not None:
        files = {"table.md": markdown, "table.csv": results_table.to_csv(rows), "table.html": results_table.to_html(rows),
                 "figures.csv": results_table.to_figures_csv(rows)}  # (the paper's other figures, when any row has them)
        for name, text in files.items():
            if text is not None:
                write_text_atomic(args.out / name, text)
        print(f"wrote {args.out / 'table.md'}, " + ", ".join(name for name, text in list(files.items())[1:] if text))
    return 0
