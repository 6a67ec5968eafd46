"""Audit subcommands of `dividemix`: diff (two runs' divisions), trace (one sample), export (cleaned
labels), inspect (thumbnails of the samples to look at).

The work is done by `dividemix.audit`; this module parses the arguments, prints and writes.
A source is a run folder (a pipeline root with artifacts/ and data/, or its artifacts/ folder), a
git revision or a DVC experiment name of the repository `--repo` (default: the current directory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dividemix_cli.errors import CliError


def register(subparsers) -> None:
    diff = subparsers.add_parser(
        "diff",
        help="compare the per-epoch divisions of two runs",
        description="Compare run B's divisions with run A's, per common epoch and network: labeled-set sizes, "
        "Jaccard overlap, samples that moved, clean-probability shift and (when the true labels are at hand) "
        "precision, recall and AUC of each side.",
    )
    diff.add_argument("a", metavar="A", help="run folder, git revision or DVC experiment")
    diff.add_argument("b", metavar="B", help="run folder, git revision or DVC experiment")
    diff.add_argument("--by-class", action="store_true", help="add a per-class breakdown (by noisy label)")
    diff.add_argument("--epochs", help="compare only these epochs: 12, 12,15 or 10-20")
    diff.add_argument("--out", type=Path, help="write the per-sample differences to FILE.parquet")
    diff.add_argument("--html", type=Path, help="write a self-contained HTML page with plots to FILE")
    diff.add_argument("--repo", default=".", help="the git + DVC repository revisions are read from (default: .)")
    diff.set_defaults(func=run_diff)

    trace = subparsers.add_parser(
        "trace",
        help="one sample's division history",
        description="Per network and epoch: loss, normalised loss, clean probability and labeled, of each SAMPLE.",
    )
    trace.add_argument("samples", metavar="SAMPLE", type=int, nargs="+",
                       help="sample_index (position in the training split)")
    where = trace.add_mutually_exclusive_group()
    where.add_argument("--source", default=".", help="run folder, git revision or DVC experiment (default: .)")
    where.add_argument("--rev", help="git revision or DVC experiment of --repo")
    trace.add_argument("--repo", default=".", help="the git + DVC repository revisions are read from (default: .)")
    trace.add_argument("--plot", type=Path, help="write a small plot to FILE.png")
    trace.set_defaults(func=run_trace)

    export = subparsers.add_parser(
        "export",
        help="the cleaned label set (kept, relabelled, distrusted)",
        description="For each training sample: noisy label, ensemble prediction and confidence, final clean "
        "probabilities and a decision. kept: the final division trusts the label (mean clean probability > "
        "threshold) and the ensemble predicts it; relabelled: the division rejects it and the ensemble predicts "
        "another class with confidence > threshold; distrusted: otherwise. Never reads the true labels.",
    )
    export.add_argument("--out", type=Path, required=True, help="a folder (Parquet and CSV), FILE.parquet or FILE.csv")
    export.add_argument("--source", type=Path, default=Path("."), help="the run folder (default: .)")
    export.add_argument("--threshold", type=float, help="default: the run's train.p_threshold")
    export.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where the networks run (default: auto)")
    export.set_defaults(func=run_export)

    inspect = subparsers.add_parser(
        "inspect",
        help="a page of thumbnails: the samples a run distrusts or relabels, and its most trusted",
        description="Per class (given label): the samples of the final division with the lowest clean probability "
        "and, for contrast, the highest, with the final networks' prediction and the export's decision, as "
        "thumbnails from the run's prepared store (the gallery the evaluate stage wrote).",
    )
    inspect.add_argument("--source", type=Path, default=Path("."), help="the run folder (default: .)")
    inspect.add_argument("--class", dest="classes", help="only these given labels: 3 or 3,7")
    inspect.add_argument("--out", type=Path, default=Path("inspect.html"), help="the page (default: inspect.html)")
    inspect.set_defaults(func=run_inspect)


def run_diff(args: argparse.Namespace) -> int:
    from dividemix.audit import diff, text
    from dividemix.audit.sources import open_source

    a = open_source(args.a, repo=args.repo)
    b = open_source(args.b, repo=args.repo)
    warn_unfinished(a, b)
    epochs = diff.parse_epochs(args.epochs) if args.epochs else None
    if args.out is not None:
        if args.out.suffix != ".parquet":
            raise CliError(f"--out {args.out}: expected FILE.parquet")
        with diff.PerSampleWriter(args.out) as writer:
            result = diff.diff_runs(a, b, by_class=args.by_class, epochs=epochs, per_sample=writer)
    else:
        result = diff.diff_runs(a, b, by_class=args.by_class, epochs=epochs)
    print("\n".join(text.diff_header(result)))
    print()
    print(text.text_table(result.summary[text.summary_columns(result)]))
    if result.by_class is not None:
        print()
        print("per class (noisy label):")
        print(text.text_table(result.by_class))
    if args.out is not None:
        print(f"\nper-sample differences: {args.out}")
    if args.html is not None:
        from dividemix.audit.pages import diff_html
        from dividemix.files.atomic import write_text_atomic

        write_text_atomic(args.html, diff_html(result, movers_section(result, [a, b], Path(args.repo))))
        print(f"page: {args.html}")
    return 0


def movers_section(result, sources, repo: Path) -> str:
    """The page's thumbnails of the samples that moved, from a prepared store of the same images."""
    from dividemix.audit import movers
    from dividemix.datasets.prepared import read_meta
    from dividemix.drawing.thumbnails import thumbnail_uris
    from dividemix.files import layout

    local = [Path(s.root) / layout.PREPARED for s in sources if s.fs is None and s.has_data]
    prepared = movers.store_for(result, local + [repo / layout.PREPARED])
    if prepared is None:
        return '<p class="note">No thumbnails: no prepared store of these training images at hand (dvc repro).</p>'
    frame = movers.movers(result)
    if frame.empty:
        return '<p class="note">No sample changed side in the last compared epoch.</p>'
    uris = thumbnail_uris(prepared, frame["sample_index"].to_numpy())
    return movers.movers_html(frame, uris, list(read_meta(prepared)["classes"]), result)


def run_trace(args: argparse.Namespace) -> int:
    from dividemix.audit import epochs as run_epochs
    from dividemix.audit import text, trace
    from dividemix.audit.sources import open_source

    source = open_source(args.rev or args.source, repo=args.repo)
    warn_unfinished(source)
    frame = trace.trace_samples(source, args.samples)
    truth = run_epochs.sample_truth(source, args.samples) or {}
    threshold = run_epochs.division_threshold(run_epochs.recorded_params(source))
    epochs = sorted(frame["epoch"].unique())
    ruled = "rule" in frame.columns  # a selection rule other than the GMM (train.selection)
    rule = ("labeled = each class's quota of the lowest loss_norm (the rule's divergence), clean_prob = its weight w"
            if ruled else f"labeled = clean_prob > {threshold}")
    print(f"run: {source.name}; division epochs {run_epochs.describe_epochs(epochs)} (warm-up epochs have no division); "
          f"{rule}")
    for sample, rows in frame.groupby("sample_index", sort=True):
        noisy = int(rows["noisy_label"].iloc[0])
        known = ""
        if sample in truth:
            known = f"; true label {truth[sample]} ({'correct' if truth[sample] == noisy else 'wrong'})"
        print(f"\nsample {sample}: noisy label {noisy}{known}")
        shown = ["net", "epoch", "loss", "loss_norm", "clean_prob", "labeled"] + (["rule", "cut", "quota"] if ruled else [])
        print(text.text_table(rows[shown]))
    if args.plot is not None:
        from dividemix.files.atomic import write_atomic

        png = trace.trace_plot(frame, threshold)
        write_atomic(args.plot, lambda tmp: tmp.write_bytes(png))
        print(f"\nplot: {args.plot}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from dividemix.audit import export
    from dividemix.audit.sources import open_source

    export.export_targets(args.out)  # a bad --out fails before the networks are loaded
    warn_unfinished(open_source(str(args.source)))
    frame, info = export.cleaned_labels(args.source, threshold=args.threshold, device=args.device)
    written = export.write_export(frame, args.out, info)
    counts = ", ".join(f"{name} {count}" for name, count in info["counts"].items())
    print(f"final division: epoch {info['epoch']}; threshold {info['threshold']}; {counts} of {len(frame)}")
    for path in written:
        print(f"wrote {path}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from dividemix.audit.inspect_page import inspect_html
    from dividemix.files.atomic import write_text_atomic

    classes = None
    if args.classes:
        try:
            classes = [int(part) for part in args.classes.split(",")]
        except ValueError:
            raise CliError(f"--class {args.classes}: expected class numbers, e.g. 3 or 3,7") from None
    write_text_atomic(args.out, inspect_html(args.source, classes))
    print(f"page: {args.out}")
    return 0


def warn_unfinished(*sources) -> None:
    """A warning line on stderr for each run that stopped before its last epoch."""
    from dividemix.audit.epochs import unfinished_warning

    for source in sources:
        if (line := unfinished_warning(source)) is not None:
            print(line, file=sys.stderr)
