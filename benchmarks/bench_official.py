"""This project against the official DivideMix code: the same data, model, batch, noise and epochs.

Run from the repository root::

    .venv/bin/python benchmarks/bench_official.py --model cnn_small --device cpu   # about 5 minutes here
    .venv/bin/python benchmarks/bench_official.py --model preact_resnet18 --repeats 1
    .venv/bin/python benchmarks/bench_official.py --device cuda --n-train 50000 --n-test 10000   # CIFAR-10 size

The official code (`../shared/peers/DivideMix-official`, read its PEER.md) is copied to a temporary
folder and edited as little as its PEER.md allows (`official_edits.py`: device, `next(iterator)`,
the real data sizes, torchnet's AUCMeter by scikit-learn's AUC, flags for the warm-up length, the
epochs, DataLoader workers and the model, timing prints; for cnn_small this project's layer
definition as a model choice). Both sides get:

- the same images: a CIFAR-10-layout set built from scikit-learn's digits (8x8 grey, upsampled to
  32x32 RGB, CIFAR-10's class names), or random CIFAR-sized images (`--random-images`);
- the same noisy labels: this project's noise stage writes them, and the official code reads them
  from its noise file (it loads `{r}_{mode}.json` when present);
- the same model, batch size (64), thread count (`torch.set_num_threads`), one warm-up epoch and
  `--epochs` DivideMix epochs; their own defaults elsewhere (the reference's hyper-parameters).

Runs are interleaved: official, project, official, project (`--repeats` pairs). Per run it prints
the warm-up epoch (both networks and the test pass), each DivideMix epoch split into its division
(eval passes and mixture fits of both networks), the training of each network and the test, the
training steps (the two divisions differ, so the steps differ: the time per step is the fair
comparison of training), and the peak PSS of the process tree (the official code's DataLoader
workers included; `common.run_sampled`). Per pair: the ratios project / official. The last line:
`epoch_ratio=<project/official> memory_ratio=<project/official>`, medians over the pairs, where an
epoch is taken on equal work: division + test + the time per step x the official run's steps.
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_line, run_sampled, workdir  # noqa: E402
from official_edits import PEER, edit_official  # noqa: E402

BATCH = 64
RATE, MODE = 0.5, "sym"


# ----------------------------------------------------------------------------------- the data
def cifar_layout(n_train: int, n_test: int, random_images: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and their labels: digits upsampled to RGB, or random images."""
    n = n_train + n_test
    if random_images:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = np.random.default_rng(0).permutation(len(digits.target))
    index = np.resize(index, n)  # more than 1,797 images repeat the digits
    grey = (digits.images[index] * (255 / 16)).astype(np.uint8)
    up = np.stack([np.asarray(Image.fromarray(g).resize((32, 32), Image.BILINEAR)) for g in grey])
    return np.repeat(up[:, None], 3, axis=1), digits.target[index]


def write_official_data(folder: Path, images: np.ndarray, labels: np.ndarray, n_train: int) -> None:
    """The CIFAR-10 python batches, unpacked, as the official loader reads them."""
    folder.mkdir(parents=True)
    rows = images.reshape(len(images), -1)
    for k, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        batch = {"data": rows[part], "labels": labels[part].tolist()}
        (folder / f"data_batch_{k}").write_bytes(pickle.dumps(batch))
    test = {"data": rows[n_train:], "labels": labels[n_train:].tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(test))


def prepare(base: Path, args) -> dict:
    """The project's prepared folder and noisy labels, and the official's batches and noise file."""
    sys.path.insert(0, str(REPO / "pipeline"))
    from dividemix.datasets.prepared import write_prepared
    from dividemix.datasets.registry import SPECS
    from dividemix.files.artifacts import read_table
    from dividemix.files.layout import Paths
    from dividemix.noise.inject import noisy_label_file

    images, labels = cifar_layout(args.n_train, args.n_test, args.random_images)
    paths = Paths.layout(base / "project")
    write_prepared(SPECS["cifar10"], paths.prepared, images[: args.n_train], labels[: args.n_train],
                   images[args.n_train :], labels[args.n_train :])
    noisy_label_file(dataset="cifar10", prepared=paths.prepared, out=paths.noisy, mode=MODE, rate=RATE, seed=1)
    noisy = read_table(paths.noisy, "noisy_labels")["noisy_label"].tolist()
    data = base / "official_data"
    write_official_data(data, images, labels, args.n_train)
    (data / f"{RATE:.1f}_{MODE}.json").write_text(json.dumps(noisy))  # the official code reads it, unchanged
    return {"wrong": float(np.mean(np.asarray(noisy) != labels[: args.n_train]))}


# ------------------------------------------------------------------------------ the project side
def project_config(args) -> dict:
    return {
        "data": {"dataset": "cifar10"},
        "noise": {"mode": MODE, "rate": RATE, "seed": 1},
        "model": {"arch": args.model},
        "train": {"device": args.device, "batch_size": BATCH, "warmup_epochs": 1, "epochs": 1 + args.epochs,
                  "lr": 0.02, "lambda_u": 25.0, "p_threshold": 0.5, "T": 0.5, "alpha": 4.0, "rampup_epochs": 16,
                  "loss_history": 1, "eval_batch_size": BATCH, "channels_last": args.channels_last},
    }


def project_child(root: Path, raw: dict, threads: int) -> None:
    """One project run in this process: warm-up, then each DivideMix epoch timed part by part."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(REPO / "pipeline"))
    sys.path.insert(0, str(REPO / "stages"))
    from bench_epoch import dividemix_epoch_timed, load_after_warmup
    from dividemix.config import parse_config, select
    from dividemix.files.layout import Paths
    from dividemix.method.codivide import LossHistory
    from dividemix.training import warmup as warmup_module
    from dividemix.training.warmup import run_warmup
    from warmup import PARAMS as WARMUP_PARAMS

    config = parse_config(raw, source="bench")
    paths = Paths.layout(root)
    warm = timed_calls(warmup_module, ("warmup_epoch", "epoch_tests"))  # the epoch, not the set-up
    run_warmup(config, paths, select(config, WARMUP_PARAMS))
    warm = sum(warm)
    ws, nets, optimizers = load_after_warmup(config, paths)
    histories = {i: LossHistory(config.train.loss_history) for i in (1, 2)}
    epochs = []
    for epoch in range(1, 1 + config.train.epochs - config.train.warmup_epochs):
        r = dividemix_epoch_timed(ws, nets, optimizers, histories, epoch, paths, {})
        steps = sum(-(-r.labeled[3 - i] // BATCH) for i in (1, 2))  # net i trains on its peer's division
        epochs.append({"division": r.parts["eval"] + r.parts["gmm"] + r.parts["other"], "train": r.parts["train1"]
                       + r.parts["train2"], "test": r.parts["test"], "total": r.total, "steps": steps,
                       "labeled": [r.labeled[1], r.labeled[2]]})
    print("BENCH " + json.dumps({"warmup": warm, "epochs": epochs}))


def timed_calls(module, names: tuple[str, ...]) -> list[float]:
    """Wrap `module`'s functions `names` so that each call's seconds are appended to the list returned."""
    import time

    seconds: list[float] = []
    for name in names:
        def wrapper(*args, _fn=getattr(module, name), **kwargs):
            start = time.perf_counter()
            result = _fn(*args, **kwargs)
            seconds.append(time.perf_counter() - start)
            return result
        setattr(module, name, wrapper)
    return seconds


# ------------------------------------------------------------------------------------- runs
def run_official(folder: Path, args, threads: int) -> tuple[dict, float]:
    env = os.environ | {"BENCH_DEVICE": args.device, "BENCH_MODEL": args.model, "BENCH_THREADS": str(threads),
                        "PYTHONPATH": str(REPO / "pipeline")}
    command = [sys.executable, "Train_cifar.py", "--data_path", str(folder.parent / "official_data"),
               "--num_epochs", str(args.epochs), "--warm_up", "1", "--num_workers", str(args.workers),
               "--r", str(RATE), "--noise_mode", MODE, "--batch_size", str(BATCH)]
    out, pss = run_sampled(command, cwd=folder, env=env)
    return parse_official(out), pss


def parse_official(out: str) -> dict:
    """The BENCH lines the edited official code prints (official_edits.TIMING)."""
    result = {"epochs": []}
    for line in out.replace("\r", "\n").splitlines():
        if line.startswith("BENCH "):
            record = json.loads(line[6:])
            if record["phase"] == "warmup":
                result["warmup"] = record["seconds"]
            else:
                result["epochs"].append(record)
    return result


def run_project(base: Path, args, threads: int) -> tuple[dict, float]:
    root = base / "project_run"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(base / "project", root)  # the prepared data and noisy labels; nothing else
    command = [sys.executable, __file__, "--child", str(root), "--config", json.dumps(project_config(args)),
               "--threads", str(threads)]
    out, pss = run_sampled(command, cwd=REPO)
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    return json.loads(line[6:]), pss


def equal_work(epoch: dict, steps: int) -> float:
    """The epoch's time had it made `steps` training steps: division + test + time per step x steps."""
    return epoch["division"] + epoch["test"] + epoch["train"] / max(epoch["steps"], 1) * steps


def print_run(side: str, result: dict, pss: float) -> None:
    print(f"  {side:<8} warm-up {result['warmup']:7.2f} s | peak PSS {pss:6.0f} MB")
    for i, e in enumerate(result["epochs"], 1):
        per_step = 1000 * e["train"] / max(e["steps"], 1)
        print(f"  {'':<8} epoch {i}: {e['total']:7.2f} s = division {e['division']:6.2f} + train {e['train']:6.2f} "
              f"({e['steps']} steps, {per_step:6.1f} ms/step) + test {e['test']:5.2f}; labeled {e['labeled']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn_small", choices=["cnn_small", "preact_resnet18"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2, help="DivideMix epochs after the one warm-up epoch")
    parser.add_argument("--repeats", type=int, default=2, help="pairs (official, project) to run")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="the official DataLoaders' num_workers")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="the project's train.channels_last (default: on)")
    parser.add_argument("--random-images", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return project_child(args.child, json.loads(args.config), args.threads)
    print(machine_line())
    print(f"model {args.model}, device {args.device}, {args.n_train} train / {args.n_test} test images, batch {BATCH}, "
          f"{args.threads} threads, official num_workers {args.workers}, project channels_last {args.channels_last}")
    with workdir(args.keep) as base:
        info = prepare(base, args)
        print(f"noisy labels: {MODE} {RATE} ({100 * info['wrong']:.1f}% wrong), the same file for both")
        official = edit_official(PEER, base / "official")
        ratios = []
        for pair in range(1, args.repeats + 1):
            print(f"pair {pair}:")
            off, off_pss = run_official(official, args, args.threads)
            print_run("official", off, off_pss)
            ours, our_pss = run_project(base, args, args.threads)
            print_run("project", ours, our_pss)
            epoch = statistics.median(equal_work(o, r["steps"]) / equal_work(r, r["steps"])
                                      for o, r in zip(ours["epochs"], off["epochs"]))
            raw = statistics.median(o["total"] / r["total"] for o, r in zip(ours["epochs"], off["epochs"]))
            ratios.append((ours["warmup"] / off["warmup"], raw, epoch, our_pss / off_pss))
            print(f"  ratios project/official: warm-up {ratios[-1][0]:.2f}, DivideMix epoch {raw:.2f} as run, "
                  f"{epoch:.2f} on equal work, memory {ratios[-1][3]:.2f}")
        med = [statistics.median(r[i] for r in ratios) for i in range(4)]
        print(f"median over {len(ratios)} pairs: warm-up {med[0]:.3f}, epoch as run {med[1]:.3f}, "
              f"epoch on equal work {med[2]:.3f}, memory {med[3]:.3f}")
        print(f"epoch_ratio={med[2]:.3f} memory_ratio={med[3]:.3f}")


if __name__ == "__main__":
    main()
