"""Scale proof of folder data sets: prepare once, stream every epoch, memory flat in the image count.

Run from the repository root::

    .venv/bin/python benchmarks/bench_folder_scale.py                         # 5k, 20k, 80k images
    .venv/bin/python benchmarks/bench_folder_scale.py --sizes 2000,8000 --num-batches 5

It writes synthetic JPEGs (short side 256, the long side 256-384, smooth colour fields plus noise,
quality 90: about the size and decoding cost of Clothing1M's photographs) once for the largest
size, and for each size a training list of its first N images (14 classes, random labels) beside
one val and one test list of 64 images. For each size it then runs, each in its own process:

    download  `prepare_dataset` as the stage runs it (data.resize 256, all cores): wall time,
              images/s (and per core), the store's size on disk, and the peak PSS of the process
              tree (the decode workers included; sampled every 0.1 s: `common.run_sampled`);
    epoch     one warm-up and `--epochs` DivideMix epochs under the Clothing1M protocol
              (train.num_batches fixed, so the work per epoch does not depend on N; random crop
              224 + flip from the streamed store, cnn_small, CPU): the median DivideMix epoch
              (each timed from the end of the one before, as the train stage logs them) and the
              peak PSS of the whole process (torch and cnn_small's 224-pixel activations: most of it).

Prints figures only; nothing is asserted. The flatness figures are max/min over the sizes. Every
file lives in a temporary folder (`--keep` keeps it); the 80k store alone is 15.7 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# (common, which imports torch, is imported by the parent only: a download child must not carry
# torch's 600 MB, which the download stage itself never imports)

CLASSES = 14
EXTRA = 64  # images of the val and of the test list each (evaluated every epoch: kept small); --extra


def write_jpegs(folder: Path, start: int, stop: int) -> None:
    from PIL import Image

    for i in range(start, stop):
        rng = np.random.default_rng(i)
        long = int(rng.integers(256, 385))
        w, h = (long, 256) if i % 2 else (256, long)
        field = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        pixels = np.asarray(field, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
        path = folder / f"{i // 1000:03d}" / f"{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_folder(base: Path, n: int, extra: int = EXTRA) -> None:
    total = n + 2 * extra
    step = 2000
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write_jpegs, [base / "images"] * len(range(0, total, step)), range(0, total, step),
                      [min(s + step, total) for s in range(0, total, step)]))
    labels = np.random.default_rng(0).integers(0, CLASSES, total)
    names = [f"{i // 1000:03d}/{i:07d}.jpg {labels[i]}\n" for i in range(total)]
    (base / "val.txt").write_text("".join(names[n : n + extra]))
    (base / "test.txt").write_text("".join(names[n + extra :]))
    (base / "all_train.txt").write_text("".join(names[:n]))


def config_dict(base: Path, n: int, args) -> dict:
    lines = (base / "all_train.txt").read_text().splitlines(keepends=True)[:n]
    train = base / f"train_{n}.txt"
    train.write_text("".join(lines))
    return {
        "data": {"dataset": "folder", "root": str(base / "images"), "train_list": str(train),
                 "val_list": str(base / "val.txt"), "test_list": str(base / "test.txt"), "image_size": 224,
                 "resize": 256, "train_crop": "random", "mean": [0.6959, 0.6537, 0.6371],
                 "std": [0.3113, 0.3192, 0.3214], "workers": os.cpu_count()},
        "noise": {"mode": "none"},
        "model": {"arch": args.model, "pretrained": None},
        "train": {"device": "cpu", "protocol": "clothing1m", "num_batches": args.num_batches,
                  "batch_size": args.batch_size, "eval_batch_size": 64, "warmup_epochs": 1, "epochs": 1 + args.epochs,
                  "rampup_epochs": 1, "lr_drop_epoch": 1, "loss_history": 1},
    }


# ----------------------------------------------------------------------------- child processes
def child(mode: str, raw: dict, root: Path) -> None:
    sys.path.insert(0, str(REPO / "pipeline"))
    from dividemix.config import parse_config, select
    from dividemix.files.layout import Paths

    config = parse_config(raw, source="bench")
    paths = Paths.layout(root)
    start = time.perf_counter()
    if mode == "download":
        from dividemix.datasets.registry import prepare_dataset

        prepare_dataset(config.data, paths.prepared)
        print(json.dumps({"seconds": time.perf_counter() - start}))
        return
    from dividemix.noise.inject import noisy_label_file
    from dividemix.training.train import run_train
    from dividemix.training.warmup import run_warmup

    noisy_label_file(dataset="folder", prepared=paths.prepared, out=paths.noisy, mode="none", rate=0.0, seed=0)
    sys.path.insert(0, str(REPO / "stages"))
    from importlib import import_module

    warm_keys, train_keys = import_module("warmup").PARAMS, import_module("train").PARAMS
    run_warmup(config, paths, select(config, warm_keys))
    clock = EpochClock()
    run_train(config, paths, select(config, train_keys), live=clock)
    print(json.dumps({"epoch_s": statistics.median(clock.seconds), "epochs_s": clock.seconds}))


class EpochClock:
    """Stands in for the train stage's DVCLive logger (`live.LiveLog`): notes when each epoch ends."""

    def start(self, past) -> None:
        self.last, self.seconds = time.perf_counter(), []

    def epoch(self, epoch: int, figures: dict) -> None:
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now


def run_child(mode: str, raw: dict, root: Path) -> tuple[dict, float]:
    """(the child's JSON line, peak PSS of its process tree in MB)."""
    from common import run_sampled

    command = [sys.executable, __file__, "--child", mode, "--root", str(root), "--config", json.dumps(raw)]
    out, pss = run_sampled(command, cwd=REPO, every=0.5)  # reading smaps costs CPU: not too often
    return json.loads(out.strip().splitlines()[-1]), pss


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,20000,80000")
    parser.add_argument("--num-batches", type=int, default=2, help="train.num_batches (default 2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="cnn_small")
    parser.add_argument("--epochs", type=int, default=3, help="DivideMix epochs; the median is printed")
    parser.add_argument("--extra", type=int, default=EXTRA,
                        help=f"images of the val and of the test list each (default {EXTRA}; a smoke run: a few)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, json.loads(args.config), args.root)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine_line, workdir

    sizes = [int(s) for s in args.sizes.split(",")]
    print(machine_line(), flush=True)
    with workdir(args.keep) as base:
        start = time.perf_counter()
        make_folder(base, max(sizes), args.extra)
        jpeg_mb = disk_bytes(base / "images") / 2**20
        print(f"wrote {max(sizes) + 2 * args.extra} JPEGs ({jpeg_mb:,.0f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
        rows = []
        for n in sizes:
            root = base / f"run_{n}"
            raw = config_dict(base, n, args)
            prepared, pss = run_child("download", raw, root)
            store = disk_bytes(root / "data/prepared")
            rate = (n + 2 * args.extra) / prepared["seconds"]
            epoch, epoch_pss = run_child("epoch", raw, root)
            rows.append((n, prepared["seconds"], rate, store, pss, epoch["epoch_s"], epoch_pss))
            print(f"{n:>7} images: prepare {prepared['seconds']:7.1f} s, {rate:6.0f} images/s "
                  f"({rate / os.cpu_count():.0f}/core), store {store / 2**30:6.2f} GiB, download peak PSS {pss:6.0f} MB; "
                  f"epoch {epoch['epoch_s']:6.1f} s (median of {', '.join(f'{s:.1f}' for s in epoch['epochs_s'])}), "
                  f"epoch peak PSS {epoch_pss:6.0f} MB",
                  flush=True)
            (root / "data/prepared/train_images.npy").unlink()  # disk: keep one large store at a time
        flat = {name: max(r[i] for r in rows) / min(r[i] for r in rows)
                for name, i in (("download_pss", 4), ("epoch_time", 5), ("epoch_pss", 6))}
        print("max/min over sizes: " + ", ".join(f"{k} {v:.3f}" for k, v in flat.items()))
        print(f"prepare_per_core_min={min(r[2] for r in rows) / os.cpu_count():.0f} "
              f"epoch_time_ratio={flat['epoch_time']:.3f} download_pss_ratio={flat['download_pss']:.3f} "
              f"epoch_pss_ratio={flat['epoch_pss']:.3f}")


if __name__ == "__main__":
    main()
