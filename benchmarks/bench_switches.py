"""DivideMix against its opt-in switches (train.augment weak_strong, train.selection uniform_jsd) and both.

Run from the repository root::

    .venv/bin/python benchmarks/bench_switches.py                        # digits, 4 settings x 3 seeds x 4 variants
    .venv/bin/python benchmarks/bench_switches.py --settings sym90 --seeds 1 --epochs 4 --warmup-epochs 2

For each noise setting (digits: sym 50/80/90%, asym 40%, as `noise.mode`/`noise.rate`) the data are
prepared and noised once; for each seed (`train.seed`) warm-up runs once (the switches do not touch
it) and its checkpoint starts every variant's `run_train`, so the variants of a seed differ only by
their switches:

    dividemix      train.augment paper,       train.selection gmm           (the default)
    weak_strong    train.augment weak_strong, train.selection gmm
    uniform_jsd    train.augment paper,       train.selection uniform_jsd
    both           train.augment weak_strong, train.selection uniform_jsd

so a selector is compared with the other at the same augmentation (dividemix vs uniform_jsd,
weak_strong vs both) and a view policy at the same selector. Printed, as Markdown, per setting
and variant over the seeds (mean ± std):

    last 10        the ensemble's mean test accuracy over the last 10 DivideMix epochs (the paper's
                   "last"; fewer epochs: over all of them, and the column says how many);
    precision      of the last epoch's labeled set, judged against the true clean mask, mean of the
    recall         two networks' divisions: `judging.evaluation.division_quality`, as `evaluate`.

`--fashion-mnist /usr/share/datasets/fashion-mnist` (Debian's dataset-fashion-mnist: real 28 px
greyscale photographs of clothes, 10 classes) runs the same on the first `--images` of its training
set and `--test-images` of its test set, written as PNGs with list files and prepared by the
stages' own code as a folder data set (stored at 32 px, cropped to 28).

Then, unless `--step-steps 0`, the per-step cost of the views: one DivideMix step's views (B labeled,
B unlabeled, from the in-memory store on `--device`) under `paper` and under `weak_strong` with each
strong policy, median wall time over `--step-steps` steps. Everything happens in a temporary
directory; the repository is only read. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from common import REPO, clock, machine_line, workdir
from dividemix.config import Config, load_config, parse_config, select
from dividemix.datasets.registry import SPECS
from dividemix.files import artifacts
from dividemix.files.layout import Paths
from dividemix.images.views import ViewDraws, views_for
from dividemix.images.views.weak_strong import POLICIES
from dividemix.judging.evaluation import RunArtifacts, division_quality
from dividemix.judging.truth import truth_of
from dividemix.noise.inject import noisy_label_file
from dividemix.training.streams import EpochStreams
from dividemix.training.train import run_train
from dividemix.training.warmup import run_warmup
from dividemix.training.workspace import Workspace

SETTINGS = {"sym50": ("sym", 0.5), "sym80": ("sym", 0.8), "sym90": ("sym", 0.9), "asym40": ("asym", 0.4)}
VARIANTS = {"dividemix": ("paper", "gmm"), "weak_strong": ("weak_strong", "gmm"),
            "uniform_jsd": ("paper", "uniform_jsd"), "both": ("weak_strong", "uniform_jsd")}
LAST = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="parameter file (digits)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--seeds", default="1,2,3", help="train.seed values, comma-separated (default 1,2,3)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the parameter file's)")
    parser.add_argument("--warmup-epochs", type=int, default=None, help="train.warmup_epochs (default: the file's)")
    parser.add_argument("--strong-policy", default="autoaugment_cifar10", choices=POLICIES, help="train.strong_policy")
    parser.add_argument("--ensemble", action="store_true", help="train.selection_ensemble for uniform_jsd (UNICON's)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="train.device (default cpu)")
    parser.add_argument("--step-steps", type=int, default=20, help="steps timed per view policy (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    parser.add_argument("--fashion-mnist", type=Path, default=None, metavar="DIR",
                        help="a real image folder instead of the digits: Fashion-MNIST's IDX files (Debian's "
                             "dataset-fashion-mnist: /usr/share/datasets/fashion-mnist), written as PNGs and lists")
    parser.add_argument("--images", type=int, default=3000, help="--fashion-mnist training images (default 3000)")
    parser.add_argument("--test-images", type=int, default=1000, help="--fashion-mnist test images (default 1000)")
    return parser.parse_args(argv)


def config_for(base: dict, setting: str, seed: int, variant: str, args: argparse.Namespace) -> Config:
    raw = copy.deepcopy(base)
    mode, rate = SETTINGS[setting]
    augment, selection = VARIANTS[variant]
    raw["noise"].update({"mode": mode, "rate": rate})
    raw["train"].update({"seed": seed, "device": args.device, "augment": augment, "selection": selection,
                         "strong_policy": args.strong_policy,
                         "selection_ensemble": args.ensemble and selection == "uniform_jsd"})
    if selection == "uniform_jsd":
        raw["train"]["loss_history"] = 1  # the rule keeps no history (config refuses more)
    for key, value in (("epochs", args.epochs), ("warmup_epochs", args.warmup_epochs)):
        if value is not None:
            raw["train"][key] = value
    if args.epochs is not None and raw["train"]["lr_drop_epoch"] >= args.epochs:
        raw["train"]["lr_drop_epoch"] = max(args.epochs - 1, raw["train"]["warmup_epochs"])
    return parse_config(raw, source="bench_switches")


def every_key(config: Config) -> dict:
    dumped = config.model_dump(mode="json")
    return select(config, [f"{section}.{key}" for section, values in dumped.items() for key in values])


def prepare(root: Path, config: Config) -> Paths:
    paths = Paths.layout(root)
    if config.data.dataset == "folder":  # the stages' own code: the store, the manifest, the noise
        return prepare_folder(paths, config)
    SPECS[config.data.dataset].prepare(paths.prepared)
    noisy_label_file(dataset=config.data.dataset, prepared=paths.prepared, out=paths.noisy, mode=config.noise.mode,
                     rate=config.noise.rate, seed=config.noise.seed)
    return paths


def prepare_folder(paths: Paths, config: Config) -> Paths:
    """The check, download and noise stages' bodies on a folder data set (no DVC needed)."""
    import importlib.util

    for name in ("check", "download", "noise"):
        spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.body(config, select(config, module.PARAMS), paths)
    return paths


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped, as Fashion-MNIST ships): uint8 images (n, 28, 28) or labels (n,)."""
    import gzip

    data = gzip.decompress(path.read_bytes())
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_fashion(source: Path, root: Path, n_train: int, n_test: int) -> dict:
    """The first n_train training and n_test test images of Fashion-MNIST as greyscale PNGs with
    `path label` lists; the folder keys of params.yaml that read them (28 px, stored at 32)."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    lists = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")[:n]
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")[:n]
        rows = []
        for i, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image, mode="L").save(root / "images" / f"{split}_{i}.png")
            rows.append(f"{split}_{i}.png {int(label)}\n")
        lists[split] = root / f"{split}.txt"
        lists[split].write_text("".join(rows))
    # the training list is its own verified subset (data.truth_list): the labels it gives are the
    # truth the injected noise departs from, so the division's precision and recall are known
    return {"dataset": "folder", "root": str(root / "images"), "train_list": str(lists["train"]),
            "test_list": str(lists["test"]), "truth_list": str(lists["train"]), "image_size": 28, "resize": 32,
            "num_classes": 10}


def run_folder(data: Paths, root: Path, warm: Paths | None = None) -> Paths:
    """A run folder holding the setting's data and, given `warm`, the seed's warm-up (copied: each
    run writes its own)."""
    paths = Paths.layout(root)
    copies = [(data.prepared, paths.prepared), (data.noisy, paths.noisy)]
    if warm is not None:
        copies += [(warm.warmup_checkpoint, paths.warmup_checkpoint), (warm.artifacts / "warmup", paths.artifacts / "warmup")]
    for source, dest in copies:
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)
    return paths


def figures(paths: Paths, truth_list: str | None = None) -> dict:
    """last-k test accuracy (k = min(10, DivideMix epochs)) and the last division's precision and
    recall, against the full truth or the verified subset (`truth_list`, a folder's)."""
    run = RunArtifacts(paths.artifacts)
    epochs = artifacts.read_table(paths.artifacts / "epochs", "epochs")
    tail = epochs["test_acc_ensemble"].to_numpy()[-LAST:]
    quality = division_quality(run, truth_of(paths.prepared, paths.noisy, truth_list))
    last = quality[quality["epoch"] == quality["epoch"].max()]
    return {"last": float(tail.mean()), "k": len(tail), "precision": float(last["precision"].mean()),
            "recall": float(last["recall"].mean())}


def run_all(args: argparse.Namespace, base: dict, root: Path) -> dict:
    results: dict[tuple[str, str], list[dict]] = {}
    for setting in args.settings.split(","):
        data = prepare(root / setting / "data", config_for(base, setting, 1, "dividemix", args))
        for seed in (int(s) for s in args.seeds.split(",")):
            warm_config = config_for(base, setting, seed, "dividemix", args)
            warm = run_folder(data, root / setting / f"warm{seed}")
            start = time.perf_counter()
            run_warmup(warm_config, warm, every_key(warm_config))
            for variant in args.variants.split(","):
                config = config_for(base, setting, seed, variant, args)
                paths = run_folder(data, root / setting / f"seed{seed}" / variant, warm)
                run_train(config, paths, every_key(config))
                results.setdefault((setting, variant), []).append(figures(paths, config.data.truth_list))
            print(f"{setting} seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)
    return results


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} ± {100 * sd:.2f}"


def table(results: dict, seeds: int) -> str:
    lines = [f"| setting | variant | augment | selection | last 10 (%, mean ± std over {seeds} seeds) | "
             "precision (%) | recall (%) |", "|---|---|---|---|---|---|---|"]
    for (setting, variant), runs in results.items():
        k = {run["k"] for run in runs}
        last = spread([r["last"] for r in runs]) + ("" if k == {LAST} else f" (last {min(k)} epochs)")
        augment, selection = VARIANTS[variant]
        lines.append(f"| {setting} | {variant} | {augment} | {selection} | {last} | "
                     f"{spread([r['precision'] for r in runs])} | {spread([r['recall'] for r in runs])} |")
    return "\n".join(lines)


def step_cost(args: argparse.Namespace, base: dict, root: Path) -> None:
    """Median wall time of one step's views per policy (B labeled + B unlabeled, in memory)."""
    config = config_for(base, args.settings.split(",")[0], 1, "dividemix", args)
    data = Paths.layout(root / args.settings.split(",")[0] / "data")
    ws = Workspace.load(config, data.prepared, data.noisy)
    b = config.train.batch_size
    x, u = torch.arange(0, b), torch.arange(b, 2 * b)
    print(f"\nper-step cost of the views (B = {b} labeled + {b} unlabeled, {ws.device}, median of {args.step_steps}):")
    for augment, policy in [("paper", POLICIES[0]), *(("weak_strong", p) for p in POLICIES)]:
        step, streams = views_for(augment, policy), EpochStreams(1, 0, 1)
        draws = ViewDraws(weak=streams.augment(), strong=streams.strong())
        times = []
        for _ in range(args.step_steps + 1):
            start = clock(ws.device)
            step(ws.train_images, ws.train_pair, x, u, draws)
            times.append(clock(ws.device) - start)
        label = "paper" if augment == "paper" else f"weak_strong {policy}"
        print(f"  {label:<36} {1000 * float(np.median(times[1:])):8.2f} ms")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = load_config(args.params).model_dump(mode="json")
    print(machine_line())
    with workdir(args.keep) as root:
        if args.fashion_mnist is not None:
            base["data"] |= write_fashion(args.fashion_mnist, root / "fashion", args.images, args.test_images)
            print(f"Fashion-MNIST: {args.images} training and {args.test_images} test images from {args.fashion_mnist}")
        results = run_all(args, base, root)
        print()
        print(table(results, len(args.seeds.split(","))))
        if args.step_steps > 0:
            step_cost(args, base, root)
    print("\nbenchmark done")


if __name__ == "__main__":
    main()
