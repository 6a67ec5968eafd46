"""The epoch loop: warm-up, co-divide + MixMatch epochs, the cross-entropy baseline, checkpoints.

Structure follows the official `Train_cifar.py` main loop. Randomness is explicit and derived
from (seed, epoch, network, purpose), never carried in a global RNG, so an epoch resumed from a
checkpoint draws exactly what the uninterrupted run drew.

Training reads images and *noisy* labels only. The test set (clean, held out) is used to report
accuracy each epoch, as in the reference; the true training labels never enter this module.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dividemix import artifacts
from dividemix.codivide import Division, LossHistory, co_divide_one, eval_logits
from dividemix.config import Config, TrainConfig
from dividemix.data import DATASETS, DeviceImages, load_test_set, load_train_images, read_meta
from dividemix.io import atomic_path, file_digest
from dividemix.mixmatch import StepBatch, ramp_weight, train_step, warmup_step
from dividemix.models import build_model
from dividemix.progress import Progress

CHECKPOINT_VERSION = 1
NETS = (1, 2)

# Purposes of the derived random streams (part of the seed, so streams never collide).
ORDER, AUGMENT, MIX, GMM, INIT, UNLABELED = range(6)


# ----------------------------------------------------------------------------------- randomness
def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for one purpose, from the run's seed and integer keys (epoch, net, purpose)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)[0] >> 1)


def torch_generator(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, *keys))


def numpy_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(derived_seed(seed, *keys))


# ------------------------------------------------------------------------------------- set-up
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; allowed here: auto, cpu")
    return torch.device(name)


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """lr until `lr_drop_epoch`, then lr / 10 (the reference's step at epoch 150 of 300)."""
    return train.lr / 10 if epoch >= train.lr_drop_epoch else train.lr


def make_optimizer(net: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_net(config: Config, num_classes: int, in_channels: int, net_id: int, device: torch.device) -> nn.Module:
    """A network initialised from its own seed (net1 and net2 start different, as in the reference)."""
    torch.manual_seed(derived_seed(config.train.seed, net_id, INIT))
    return build_model(config.model.arch, num_classes, in_channels).to(device)


@dataclass
class Workspace:
    """Everything an epoch needs, on the device: images, noisy labels, the test set."""

    config: Config
    device: torch.device
    num_classes: int
    train_images: DeviceImages
    noisy_labels: torch.Tensor  # (N,) int64 on the device
    test_images: DeviceImages
    test_labels: torch.Tensor

    @classmethod
    def load(cls, config: Config, prepared: Path, noisy_labels_path: Path) -> "Workspace":
        read_meta(prepared, dataset=config.data.dataset)
        spec = DATASETS[config.data.dataset]
        device = resolve_device(config.train.device)
        noisy = artifacts.read_table(noisy_labels_path, "noisy_labels")
        images = load_train_images(prepared)
        if len(noisy) != len(images) or not np.array_equal(noisy["sample_index"].to_numpy(), np.arange(len(images))):
            raise ValueError(f"{noisy_labels_path}: noisy labels do not cover the {len(images)} training samples")
        test_x, test_y = load_test_set(prepared)
        return cls(
            config=config,
            device=device,
            num_classes=spec.num_classes,
            train_images=DeviceImages(images, spec, device),
            noisy_labels=torch.tensor(noisy["noisy_label"].to_numpy(), dtype=torch.int64, device=device),
            test_images=DeviceImages(test_x, spec, device),
            test_labels=torch.as_tensor(test_y, dtype=torch.int64).to(device),
        )

    @property
    def n_train(self) -> int:
        return len(self.train_images)

    def new_net(self, net_id: int) -> nn.Module:
        in_channels = self.train_images.images.shape[1]
        return build_net(self.config, self.num_classes, in_channels, net_id, self.device)


# ------------------------------------------------------------------------------------ testing
def ensemble_accuracy(nets: list[nn.Module], ws: Workspace) -> list[float]:
    """Test accuracy of each network and of the ensemble (argmax of the sum of logits), as fractions."""
    logits = [eval_logits(net, ws.test_images) for net in nets]
    accs = [(lg.argmax(1) == ws.test_labels).float().mean() for lg in logits]
    ensemble = (sum(logits).argmax(1) == ws.test_labels).float().mean()
    return [float(a) for a in torch.stack([*accs, ensemble]).cpu()]


# ------------------------------------------------------------------------------------ batches
def batches(index: torch.Tensor, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A shuffled pass over `index` in chunks of `size` (the last one may be smaller, no drop_last)."""
    order = index[torch.randperm(len(index), generator=generator).to(index.device)]
    yield from torch.split(order, size)


def endless_batches(index: torch.Tensor, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The unlabeled iterator: reshuffled and restarted whenever exhausted (reference behaviour)."""
    while True:
        yield from batches(index, size, generator)


# ------------------------------------------------------------------------------------ warm-up
def warmup_epoch(
    net: nn.Module, optimizer: torch.optim.Optimizer, ws: Workspace, epoch: int, net_id: int, *, conf_penalty: bool
) -> dict:
    """One pass of cross-entropy on all noisy labels (batch 2B, as the reference's warm-up loader).

    `conf_penalty` adds the negative entropy (the reference switches it on for asymmetric noise;
    here it is an explicit parameter, never inferred from the noise's name).
    """
    train = ws.config.train
    lr = learning_rate(train, epoch)
    set_lr(optimizer, lr)
    net.train()
    order = torch_generator(train.seed, epoch, net_id, ORDER)
    augment = torch_generator(train.seed, epoch, net_id, AUGMENT)
    everything = torch.arange(ws.n_train, device=ws.device)
    values = []
    for index in batches(everything, 2 * train.batch_size, order):
        x = ws.train_images.augmented(index, augment)
        values.append(warmup_step(net, optimizer, x, ws.noisy_labels[index], conf_penalty=conf_penalty))
    ce, penalty, loss = torch.stack(values).cpu().T.tolist()  # one host sync per epoch
    steps = len(ce)
    return {
        "epoch": [epoch] * steps,
        "net": [net_id] * steps,
        "step": list(range(steps)),
        "lr": [lr] * steps,
        "lambda_u": [0.0] * steps,
        "loss_x": ce,
        "loss_u": [0.0] * steps,
        "penalty": penalty,
        "loss": loss,
        "n_labeled": [ws.n_train] * steps,
        "n_unlabeled": [0] * steps,
    }


# ---------------------------------------------------------------------------------- DivideMix
def dividemix_epoch(
    net: nn.Module,
    peer: nn.Module,
    optimizer: torch.optim.Optimizer,
    ws: Workspace,
    division: Division,
    epoch: int,
    net_id: int,
) -> dict:
    """Train `net` for one epoch on the division made by `peer`'s losses (co-divide).

    An epoch is ceil(|labeled| / B) steps; num_iter = |labeled| // B + 1 is used only for the ramp,
    as in the reference. An empty labeled set skips the epoch for this network (the official code
    crashes); an empty unlabeled set trains on the labeled samples alone (Lu = 0).
    """
    train = ws.config.train
    lr = learning_rate(train, epoch)
    set_lr(optimizer, lr)
    labeled = torch.as_tensor(np.flatnonzero(division.labeled), device=ws.device)
    unlabeled = torch.as_tensor(np.flatnonzero(~division.labeled), device=ws.device)
    clean_prob = torch.as_tensor(division.clean_prob, dtype=torch.float32, device=ws.device)
    n_labeled, n_unlabeled = len(labeled), len(unlabeled)
    rows: dict[str, list] = {name: [] for name in artifacts.LOSSES.names}
    if n_labeled == 0:
        return rows

    net.train()  # the peer is put in eval mode by each train_step
    order = torch_generator(train.seed, epoch, net_id, ORDER)
    unlabeled_order = torch_generator(train.seed, epoch, net_id, UNLABELED)
    augment = torch_generator(train.seed, epoch, net_id, AUGMENT)
    mixing = torch_generator(train.seed, epoch, net_id, MIX)
    beta = numpy_rng(train.seed, epoch, net_id, MIX)
    unlabeled_batches = endless_batches(unlabeled, train.batch_size, unlabeled_order) if n_unlabeled else None
    empty = torch.empty(0, dtype=torch.int64, device=ws.device)
    num_iter = n_labeled // train.batch_size + 1

    values, lambdas = [], []
    for step, x_index in enumerate(batches(labeled, train.batch_size, order)):
        u_index = next(unlabeled_batches) if unlabeled_batches is not None else empty
        batch = StepBatch(
            x1=ws.train_images.augmented(x_index, augment),
            x2=ws.train_images.augmented(x_index, augment),
            y=ws.noisy_labels[x_index],
            w=clean_prob[x_index],
            u1=ws.train_images.augmented(u_index, augment),
            u2=ws.train_images.augmented(u_index, augment),
        )
        lam = ramp_weight(train.lambda_u, epoch + step / num_iter, train.warmup_epochs, train.rampup_epochs)
        values.append(
            train_step(
                net, peer, optimizer, batch,
                num_classes=ws.num_classes, T=train.T, alpha=train.alpha, lambda_u=lam,
                rng=beta, generator=mixing,
            )
        )
        lambdas.append(lam)
    loss_x, loss_u, penalty, loss = torch.stack(values).cpu().T.tolist()  # one host sync per epoch
    steps = len(lambdas)
    rows.update(
        epoch=[epoch] * steps, net=[net_id] * steps, step=list(range(steps)), lr=[lr] * steps,
        lambda_u=lambdas, loss_x=loss_x, loss_u=loss_u, penalty=penalty, loss=loss,
        n_labeled=[n_labeled] * steps, n_unlabeled=[n_unlabeled] * steps,
    )
    return rows


def merge_rows(*parts: dict) -> dict:
    return {key: [value for part in parts for value in part[key]] for key in parts[0]}


def division_rows(epoch: int, divisions: dict[int, Division], noisy_labels: np.ndarray) -> dict:
    n = len(noisy_labels)
    rows: dict[str, list] = {name: [] for name in artifacts.DIVISIONS.names}
    for net_id, d in divisions.items():
        rows["epoch"].append(np.full(n, epoch, dtype=np.int32))
        rows["net"].append(np.full(n, net_id, dtype=np.int8))
        rows["sample_index"].append(np.arange(n, dtype=np.int64))
        rows["noisy_label"].append(noisy_labels)
        rows["loss"].append(d.loss.astype(np.float32))
        rows["loss_norm"].append(d.loss_norm.astype(np.float32))
        rows["clean_prob"].append(d.clean_prob.astype(np.float32))
        rows["labeled"].append(d.labeled)
    return {key: np.concatenate(value) for key, value in rows.items()}


def mixture_rows(epoch: int, divisions: dict[int, Division]) -> dict:
    rows: dict[str, list] = {name: [] for name in artifacts.MIXTURES.names}
    for net_id, d in divisions.items():
        m = d.mixture
        for component in (0, 1):
            rows["epoch"].append(epoch)
            rows["net"].append(net_id)
            rows["component"].append(component)
            rows["mean"].append(m.means[component])
            rows["variance"].append(m.variances[component])
            rows["weight"].append(m.weights[component])
            rows["clean"].append(component == m.clean)
    return rows


def epoch_row(epoch: int, phase: str, accs: list[float], labeled: dict[int, int] | None) -> dict:
    return {
        "epoch": [epoch],
        "phase": [phase],
        "test_acc_net1": [accs[0]],
        "test_acc_net2": [accs[1]],
        "test_acc_ensemble": [accs[2]],
        "labeled_by_net1": [labeled[1] if labeled else None],
        "labeled_by_net2": [labeled[2] if labeled else None],
    }


# -------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a kill never leaves half of one) and byte-reproducibly.

    Serialised to memory first: torch.save on a path names the archive inside after the file,
    and the temporary file's name is random, so the same state would give different bytes.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    # weights_only=True: a checkpoint holds tensors, numbers and strings only, never pickled code.
    return torch.load(path, map_location=device, weights_only=True)


# ------------------------------------------------------------------------------------ stages
@dataclass(frozen=True)
class Paths:
    """Where a stage reads and writes: given by dvc.yaml on the command line, never hard-coded.

    A stage fills in the fields it uses; the others stay None.
    """

    prepared: Path
    noisy: Path
    warmup_checkpoint: Path | None = None
    warmup_artifacts: Path | None = None
    train_checkpoint: Path | None = None
    artifacts: Path | None = None
    baseline: Path | None = None

    @classmethod
    def layout(cls, root: Path) -> "Paths":
        """The layout dvc.yaml wires, under `root`: for runs outside DVC (tests, benchmarks).

        The stages never use it (their paths come from dvc.yaml); a test keeps the two equal.
        """
        return cls(
            prepared=root / "data/prepared",
            noisy=root / "data/noisy/labels.parquet",
            warmup_checkpoint=root / "checkpoints/warmup/nets.pt",
            warmup_artifacts=root / "artifacts/warmup",
            train_checkpoint=root / "checkpoints/train/last.pt",
            artifacts=root / "artifacts",
            baseline=root / "artifacts/baseline",
        )


def run_warmup(config: Config, paths: Paths, params: dict[str, Any], *, stream=None) -> dict[str, Any]:
    """Warm up both networks for `warmup_epochs` epochs; write their checkpoint and per-step losses.

    `params` (the keys the stage read, with values) is recorded in every output it writes.
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    train = config.train
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    losses, epochs = [], []
    progress = Progress("warmup", train.warmup_epochs, stream=stream)
    for epoch in range(train.warmup_epochs):
        for i in NETS:  # net1 one full pass, then net2 one full pass
            losses.append(warmup_epoch(nets[i], optimizers[i], ws, epoch, i, conf_penalty=train.conf_penalty))
        accs = ensemble_accuracy([nets[1], nets[2]], ws)
        epochs.append(epoch_row(epoch, "warmup", accs, None))
        progress.update(epoch, test_acc=accs[2])
    progress.close()

    meta = {"params": params}
    artifacts.write_table(paths.warmup_artifacts / "losses.parquet", "losses", merge_rows(*losses), meta)
    artifacts.write_table(paths.warmup_artifacts / "epochs.parquet", "epochs", merge_rows(*epochs), meta)
    save_checkpoint(
        paths.warmup_checkpoint,
        {
            "version": CHECKPOINT_VERSION,
            "params": params,
            "epoch": train.warmup_epochs - 1,
            "nets": {str(i): nets[i].state_dict() for i in NETS},
            "optimizers": {str(i): optimizers[i].state_dict() for i in NETS},
        },
    )
    return {"test_acc": epochs[-1]["test_acc_ensemble"][0]}


def _train_fingerprint(params: dict[str, Any], paths: Paths) -> dict[str, Any]:
    """What a train checkpoint was made from: resume only if all of it is unchanged."""
    return {
        "params": params,
        "noisy_labels": file_digest(paths.noisy),
        "warmup": file_digest(paths.warmup_checkpoint),
    }


_TRAIN_OUTPUTS = ("divisions", "mixtures", "losses", "epochs")


def _clear_epochs(folder: Path, after: int) -> None:
    """Remove per-epoch files of epochs > `after` (left by a killed or an older, different run)."""
    if not folder.exists():
        return
    for file in folder.glob("epoch_*.parquet"):
        if int(file.stem.split("_")[1]) > after:
            file.unlink()


def run_train(
    config: Config,
    paths: Paths,
    params: dict[str, Any],
    *,
    stream=None,
) -> dict:
    """Co-divide + MixMatch epochs from the warm-up checkpoint to `epochs`, resumable per epoch.

    The checkpoint is written after each epoch's artifacts; a run killed at any point restarts
    from the last finished epoch and ends with the same artifacts as an uninterrupted one.
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    train = config.train
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    fingerprint = _train_fingerprint(params, paths)

    start, history = _restore(paths, ws, nets, optimizers, fingerprint)
    last_done = start - 1
    for name in _TRAIN_OUTPUTS:
        _clear_epochs(paths.artifacts / name, last_done)

    noisy_np = ws.noisy_labels.cpu().numpy()
    meta = {"params": params}
    progress = Progress("train", train.epochs - train.warmup_epochs, initial=start - train.warmup_epochs, stream=stream)
    if start > train.warmup_epochs:
        progress.note(f"resuming after epoch {start - 1} from {paths.train_checkpoint}")
    for epoch in range(start, train.epochs):
        divisions = {
            i: co_divide_one(
                nets[i], ws.train_images, ws.noisy_labels, history[i],
                p_threshold=train.p_threshold, seed=derived_seed(train.seed, epoch, i, GMM),
            )
            for i in NETS  # both divisions come from the networks *before* either trains
        }
        # net1 learns from net2's division; then net2 from net1's, with the already-updated net1 as peer.
        rows1 = dividemix_epoch(nets[1], nets[2], optimizers[1], ws, divisions[2], epoch, 1)
        rows2 = dividemix_epoch(nets[2], nets[1], optimizers[2], ws, divisions[1], epoch, 2)
        accs = ensemble_accuracy([nets[1], nets[2]], ws)
        labeled = {i: int(divisions[i].labeled.sum()) for i in NETS}

        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "divisions", epoch), "divisions",
                              division_rows(epoch, divisions, noisy_np), meta)
        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "mixtures", epoch), "mixtures",
                              mixture_rows(epoch, divisions), meta)
        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "losses", epoch), "losses",
                              merge_rows(rows1, rows2), meta)
        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "epochs", epoch), "epochs",
                              epoch_row(epoch, "dividemix", accs, labeled), meta)
        save_checkpoint(
            paths.train_checkpoint,
            {
                "version": CHECKPOINT_VERSION,
                "fingerprint": fingerprint,
                "epoch": epoch,
                "nets": {str(i): nets[i].state_dict() for i in NETS},
                "optimizers": {str(i): optimizers[i].state_dict() for i in NETS},
                "history": {str(i): history[i].state() for i in NETS},
            },
        )
        progress.update(epoch, test_acc=accs[2], labeled_by_net1=labeled[1], labeled_by_net2=labeled[2])
    progress.close()
    return {"epochs": train.epochs}


def _restore(paths: Paths, ws: Workspace, nets: dict, optimizers: dict, fingerprint: dict) -> tuple[int, dict]:
    """Load the train checkpoint if it was made from the same inputs, else the warm-up checkpoint.

    Returns the first epoch to run and each network's loss history.
    """
    train = ws.config.train
    if paths.train_checkpoint.exists():
        state = load_checkpoint(paths.train_checkpoint, ws.device)
        if state.get("version") == CHECKPOINT_VERSION and state.get("fingerprint") == fingerprint:
            for i in NETS:
                nets[i].load_state_dict(state["nets"][str(i)])
                optimizers[i].load_state_dict(state["optimizers"][str(i)])
            history = {i: LossHistory(train.loss_history, [t.cpu() for t in state["history"][str(i)]]) for i in NETS}
            return int(state["epoch"]) + 1, history
        paths.train_checkpoint.unlink()  # made from other inputs: start over
    state = load_checkpoint(paths.warmup_checkpoint, ws.device)
    if state["epoch"] != train.warmup_epochs - 1:
        raise ValueError(
            f"{paths.warmup_checkpoint}: warmed up for {state['epoch'] + 1} epochs, train.warmup_epochs is "
            f"{train.warmup_epochs}; rerun the warmup stage"
        )
    for i in NETS:
        nets[i].load_state_dict(state["nets"][str(i)])
        optimizers[i].load_state_dict(state["optimizers"][str(i)])
    return train.warmup_epochs, {i: LossHistory(train.loss_history) for i in NETS}


def run_baseline(config: Config, paths: Paths, params: dict[str, Any], *, stream=None) -> dict:
    """Plain cross-entropy on the same noisy labels, same model and epochs, one network."""
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    train = config.train
    net = ws.new_net(1)
    optimizer = make_optimizer(net, train)
    losses, accs = [], []
    progress = Progress("baseline", train.epochs, stream=stream)
    for epoch in range(train.epochs):
        rows = warmup_epoch(net, optimizer, ws, epoch, 1, conf_penalty=False)
        rows["net"] = [0] * len(rows["net"])  # net 0: the baseline
        losses.append(rows)
        logits = eval_logits(net, ws.test_images)
        acc = float((logits.argmax(1) == ws.test_labels).float().mean())
        accs.append(acc)
        progress.update(epoch, test_acc=acc)
    progress.close()
    meta = {"params": params}
    artifacts.write_table(paths.baseline / "losses.parquet", "losses", merge_rows(*losses), meta)
    artifacts.write_table(
        paths.baseline / "epochs.parquet", "baseline_epochs", {"epoch": list(range(train.epochs)), "test_acc": accs}, meta
    )
    return {"test_acc_last": accs[-1]}
