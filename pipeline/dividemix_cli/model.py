"""Model subcommands of `dividemix`: predict (the run's ensemble on new images) and export-model
(ONNX + safetensors + model.json for a server that does not have this package).

The work is done by `dividemix.serving`, imported inside the handlers: `dividemix --help` never
loads torch. A run is a folder (`--run`, default: .) or a git revision / DVC experiment (`--rev`)
of the repository `--repo`, read through DVC as `dividemix diff` reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run", default=".", help="the run folder, a pipeline root (default: .)")
    where.add_argument("--rev", help="a git revision or DVC experiment of --repo, read through DVC")
    parser.add_argument("--repo", default=".", help="the git + DVC repository --rev is read from (default: .)")
    parser.add_argument("--weights", default="auto", choices=["auto", "final", "best-val"],
                        help="the final networks, or each network's best-validation weights (runs with a "
                        "validation set); auto: best-val where there is one, else final")


def register(subparsers) -> None:
    predict = subparsers.add_parser(
        "predict",
        help="classify images with the run's two networks (their ensemble)",
        description="The ensemble of the run's two networks (argmax of the sum of their logits, as the test "
        "accuracy) on image files, folders, 'path [label]' list files, or the run's own prepared split "
        "(--split), through exactly the run's evaluation transform. Writes Parquet (and CSV with --csv): "
        "path, label (from a list), predicted class and name, probability, top-k, each network's prediction.",
    )
    predict.add_argument("inputs", metavar="INPUT", nargs="*", help="image file, folder or list file")
    predict.add_argument("--split", choices=["test", "val", "test2"],
                         help="the run's own prepared split instead of files (the embedded data sets have no files)")
    predict.add_argument("--root", type=Path, help="the folder list files' paths are under (default: each list's folder)")
    _add_run_options(predict)
    predict.add_argument("--out", type=Path, default=Path("predictions.parquet"),
                         help="FILE.parquet (default: predictions.parquet)")
    predict.add_argument("--csv", action="store_true", help="also write FILE.csv beside it")
    predict.add_argument("--top-k", type=int, default=5, help="classes ranked per image (default: 5)")
    predict.add_argument("--batch-size", type=int, default=256, help="images decoded and run at once (default: 256)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                         help="where the networks run (default: auto, CUDA when available)")
    predict.set_defaults(func=run_predict)

    export = subparsers.add_parser(
        "export-model",
        help="the run's ensemble as ONNX + safetensors + model.json, for serving without this package",
        description="Exports the ensemble of the run's two networks to ONNX (dynamic batch; checked with "
        "onnxruntime against PyTorch on the run's test images), their weights as safetensors, and model.json: "
        "input size, resize and crop, mean/std, class names, which weights, the run's parameters and metrics.",
    )
    export.add_argument("--out", type=Path, required=True,
                        help="a new or empty folder, or an earlier export (replaced whole)")
    _add_run_options(export)
    export.set_defaults(func=run_export_model)


def _positive(value: int, option: str) -> int:
    from dividemix_cli.errors import CliError

    if value < 1:
        raise CliError(f"{option} {value}: expected a whole number >= 1")
    return value


def run_predict(args: argparse.Namespace) -> int:
    from dividemix_cli.errors import CliError

    if bool(args.inputs) == bool(args.split):
        raise CliError("name images (files, folders, list files) or --split test|val|test2, not both nor neither")
    _positive(args.top_k, "--top-k")
    _positive(args.batch_size, "--batch-size")
    from dividemix.device import resolve_device
    from dividemix.serving import predict as serving
    from dividemix.serving.inputs import collect
    from dividemix.serving.run_model import load_run_model, open_run

    out, csv = serving.targets(args.out, args.csv)  # a bad --out fails before the networks are loaded
    items = collect(args.inputs, args.root) if args.inputs else None
    model = load_run_model(open_run(args.run, rev=args.rev, repo=args.repo), weights=args.weights)
    device = resolve_device(args.device)
    if items is None:
        batches, total = serving.split_batches(model, args.split, args.batch_size), None
    else:
        batches, total = serving.file_batches(model, items, args.batch_size), len(items)
    summary = serving.predict(model, batches, out=out, csv=csv, total=total, top_k=args.top_k, device=device)
    print(f"run: {model.source.name}; {model.arch}, {model.describe()}; ensemble of both networks on {device.type}")
    line = f"predicted {summary.n} image(s)"
    if summary.accuracy is not None:
        line += f"; accuracy on the {summary.n_labelled} labelled: {100 * summary.accuracy:.2f}% ({summary.correct} correct)"
    print(line)
    for path in summary.written:
        print(f"wrote {path}")
    return 0


def run_export_model(args: argparse.Namespace) -> int:
    from dividemix.serving.onnx_export import check_out, export_model
    from dividemix.serving.run_model import load_run_model, open_run

    check_out(args.out)  # before the networks are loaded
    model = load_run_model(open_run(args.run, rev=args.rev, repo=args.repo), weights=args.weights)
    info = export_model(model, args.out)
    check = info["check"]
    print(f"run: {model.source.name}; {model.arch}, {model.describe()}")
    print(f"onnx opset {info['onnx']['opset']}, dynamic batch; onnxruntime vs PyTorch on {check['images']} "
          f"({check['inputs']}): max probability difference {check['max_abs_diff_probabilities']:.1e}, same classes")
    print(f"wrote {args.out}/ (model.onnx, weights.safetensors, model.json)")
    return 0
