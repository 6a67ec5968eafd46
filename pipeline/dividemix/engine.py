"""The epoch loop: warm-up, co-divide + MixMatch epochs, the cross-entropy baseline, checkpoints.

Structure follows the official `Train_cifar.py` main loop. Randomness is explicit and derived
from (seed, epoch, network, purpose), never carried in a global RNG, so an epoch resumed from a
checkpoint draws exactly what the uninterrupted run drew.

Training reads images and *noisy* labels only. The test set (clean, held out) is used to report
accuracy each epoch, as in the reference; the true training labels never enter this module. A
clean validation set, when the data set has one (Clothing1M), picks each network's best weights.

`train.protocol` picks the reference script: "cifar" (`Train_cifar.py`: every epoch divides the
whole training set) or "clothing1m" (`Train_clothing1M.py`, also WebVision: each network divides
a fresh class-balanced sample of `num_batches * batch_size` training samples per epoch, warm-up
draws `2 * num_batches * batch_size`, the step trains on the 2B labeled mixed samples only, and
best-validation weights are kept). The `ablation` section switches off one component at a time
(the paper's Table 5).

No step loop synchronises with the host: per-step losses stay on the device and are gathered
once per epoch (`host_values`); random draws are made on CPU generators and queued to the
device without waiting (`data.host_to_device`).
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

from dividemix import artifacts, layout
from dividemix.codivide import Division, LossHistory, co_divide_one, eval_logits
from dividemix.config import Config, TrainConfig
from dividemix.data import (
    DeviceImages,
    host_to_device,
    load_test_set,
    load_train_images,
    load_val_set,
    read_meta,
    resolve_spec,
)
from dividemix.io import atomic_path, file_digest
from dividemix.mixmatch import StepBatch, ramp_weight, train_step, warmup_step
from dividemix.models import build_model
from dividemix.progress import Progress

CHECKPOINT_VERSION = 1
NETS = (1, 2)

# Purposes of the derived random streams (part of the seed, so streams never collide).
ORDER, AUGMENT, MIX, GMM, INIT, UNLABELED, SUBSET = range(7)


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


def build_net(
    config: Config,
    num_classes: int,
    in_channels: int,
    net_id: int,
    device: torch.device,
    *,
    pretrained: bool = True,
    compile: bool | None = None,
) -> nn.Module:
    """A network initialised from its own seed (net1 and net2 start different, as in the reference).

    `pretrained`: load `model.pretrained` when set (a network whose weights come from a checkpoint
    next does not need to). train.channels_last puts its weights in the channels-last format;
    train.compile (or `compile`) compiles it in place with `nn.Module.compile`, which keeps the
    state-dict keys, so checkpoints do not depend on it.
    """
    torch.manual_seed(derived_seed(config.train.seed, net_id, INIT))
    if pretrained and config.model.pretrained is not None:
        net = build_model(config.model.arch, num_classes, in_channels, pretrained=config.model.pretrained)
    else:
        net = build_model(config.model.arch, num_classes, in_channels)
    net = net.to(device)
    if config.train.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if config.train.compile if compile is None else compile:
        net.compile()
    return net


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
    # The clean validation set (Clothing1M's), when the data set has one: best-weights selection.
    val_images: DeviceImages | None = None
    val_labels: torch.Tensor | None = None

    @classmethod
    def load(cls, config: Config, prepared: Path, noisy_labels_path: Path) -> "Workspace":
        meta = read_meta(prepared, dataset=config.data.dataset)
        spec = resolve_spec(config.data.dataset, meta)  # a folder data set takes its classes from meta
        device = resolve_device(config.train.device)
        channels_last = config.train.channels_last
        noisy = artifacts.read_table(noisy_labels_path, "noisy_labels")
        images = load_train_images(prepared)
        if len(noisy) != len(images) or not np.array_equal(noisy["sample_index"].to_numpy(), np.arange(len(images))):
            raise ValueError(f"{noisy_labels_path}: noisy labels do not cover the {len(images)} training samples")
        test_x, test_y = load_test_set(prepared)
        val = load_val_set(prepared)
        return cls(
            config=config,
            device=device,
            num_classes=spec.num_classes,
            train_images=DeviceImages(images, spec, device, channels_last=channels_last),
            noisy_labels=torch.tensor(noisy["noisy_label"].to_numpy(), dtype=torch.int64, device=device),
            test_images=DeviceImages(test_x, spec, device, channels_last=channels_last),
            test_labels=torch.as_tensor(test_y, dtype=torch.int64).to(device),
            val_images=None if val is None else DeviceImages(val[0], spec, device, channels_last=channels_last),
            val_labels=None if val is None else torch.as_tensor(val[1], dtype=torch.int64).to(device),
        )

    @property
    def n_train(self) -> int:
        return len(self.train_images)

    @property
    def has_val(self) -> bool:
        return self.val_images is not None

    def new_net(self, net_id: int, *, pretrained: bool = True, compile: bool | None = None) -> nn.Module:
        in_channels = self.train_images.images.shape[1]
        return build_net(
            self.config, self.num_classes, in_channels, net_id, self.device, pretrained=pretrained, compile=compile
        )

    def train_batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A training batch: the train transform, or the test transform under ablation.augmentation false."""
        if self.config.ablation.augmentation:
            return self.train_images.augmented(index, generator)
        return self.train_images.plain(index)

    def logits(self, net: nn.Module, images: DeviceImages) -> torch.Tensor:
        """An eval pass over `images` at train.eval_batch_size (bf16 under train.amp)."""
        train = self.config.train
        return eval_logits(net, images, batch_size=train.eval_batch_size, amp=train.amp)


# ------------------------------------------------------------------------------------ testing
def ensemble_accuracy(nets: list[nn.Module], ws: Workspace) -> list[float]:
    """Test accuracy of each network and of the ensemble (argmax of the sum of logits), as fractions.

    Under ablation.ensemble_test false the third figure (the one reported as DivideMix's) is
    net1's accuracy alone.
    """
    logits = [ws.logits(net, ws.test_images) for net in nets]
    accs = [(lg.argmax(1) == ws.test_labels).float().mean() for lg in logits]
    if ws.config.ablation.ensemble_test:
        ensemble = (sum(logits).argmax(1) == ws.test_labels).float().mean()
    else:
        ensemble = accs[0]
    return [float(a) for a in torch.stack([*accs, ensemble]).cpu()]


class BestValidation:
    """Each network's best validation accuracy so far and its weights (the reference's Clothing1M
    `val()`: saved when strictly better), and the test accuracy of the ensemble of those weights
    (the reference's final Clothing1M test, here reported every epoch as it stands).

    The reference starts from best = 0 (a network at 0% would never be saved and its final
    load would fail); here from -1, so the first validated epoch is always kept.
    """

    def __init__(self, ws: Workspace, state: dict[str, Any] | None = None):
        self.ws = ws
        self.acc = {i: -1.0 for i in NETS}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.test_acc: float | None = None
        # Built once, right after the training networks (build_net reseeds the global RNG from the
        # same per-network seeds, so the state it leaves is the one net2's construction left).
        self._nets = {i: ws.new_net(i, pretrained=False, compile=False) for i in NETS}
        if state is not None:
            self.acc = {i: float(state["acc"][str(i)]) for i in NETS}
            self.weights = {i: state["weights"][str(i)] for i in NETS if str(i) in state["weights"]}
            self.test_acc = None if state["test_acc"] < 0 else float(state["test_acc"])

    def update(self, nets: dict[int, nn.Module]) -> tuple[float, float, float]:
        """Validate both networks, keep a network's weights if strictly better; (val1, val2, test)."""
        ws = self.ws
        hits = [(ws.logits(nets[i], ws.val_images).argmax(1) == ws.val_labels).float().mean() for i in NETS]
        accs = dict(zip(NETS, (float(a) for a in torch.stack(hits).cpu())))  # one host sync per epoch
        changed = False
        for i in NETS:
            if accs[i] > self.acc[i]:
                self.acc[i] = accs[i]
                self.weights[i] = {k: v.detach().clone() for k, v in nets[i].state_dict().items()}
                changed = True
        if changed:
            for i in NETS:
                self._nets[i].load_state_dict(self.weights[i])
            self.test_acc = ensemble_accuracy([self._nets[1], self._nets[2]], ws)[2]
        return accs[1], accs[2], self.test_acc

    def state(self) -> dict[str, Any]:
        return {
            "acc": {str(i): self.acc[i] for i in NETS},
            "weights": {str(i): w for i, w in self.weights.items()},
            "test_acc": -1.0 if self.test_acc is None else self.test_acc,
        }


# -------------------------------------------------------------------------------- subsets
def balanced_sample(labels: np.ndarray, num_samples: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A class-balanced sample of the training set, as the reference's Clothing1M loader ('all').

    Walk a random permutation and take a sample while its (noisy) class has fewer than
    num_samples / num_classes taken and fewer than num_samples are taken in all. Returned sorted
    (sample_index order; the loops shuffle it with their own generators).
    """
    order = rng.permutation(len(labels))
    shuffled = np.asarray(labels)[order]
    # rank of each position among the earlier positions of its class (the class's count so far)
    by_class = np.argsort(shuffled, kind="stable")
    sorted_labels = shuffled[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[by_class] = np.arange(len(order)) - starts
    accepted = rank < num_samples / num_classes  # the reference: class_num[label] < num_samples / 14
    taken = accepted & (np.cumsum(accepted) <= num_samples)
    return np.sort(order[taken]).astype(np.int64)


def epoch_subset(ws: Workspace, epoch: int, net_id: int, num_samples: int) -> np.ndarray | None:
    """The Clothing1M protocol's class-balanced sample for (epoch, network); None under "cifar"."""
    train = ws.config.train
    if train.protocol != "clothing1m":
        return None
    labels = ws.noisy_labels.cpu().numpy()
    return balanced_sample(labels, num_samples, ws.num_classes, numpy_rng(train.seed, epoch, net_id, SUBSET))


def host_values(values: list[torch.Tensor]) -> list[list[float]]:
    """An epoch's per-step loss tensors (steps, k), gathered to the host at once: its only sync."""
    return torch.stack(values).cpu().T.tolist()


# ------------------------------------------------------------------------------------ batches
def batches(index: torch.Tensor, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A shuffled pass over `index` in chunks of `size` (the last one may be smaller, no drop_last)."""
    order = index[host_to_device(torch.randperm(len(index), generator=generator), index.device)]
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
    here it is an explicit parameter, never inferred from the noise's name). Under the Clothing1M
    protocol the pass is over a fresh class-balanced sample of 2 * num_batches * batch_size
    samples (the reference's `loader.run('warmup')`, drawn for each network), i.e. num_batches steps.
    """
    train = ws.config.train
    lr = learning_rate(train, epoch)
    set_lr(optimizer, lr)
    net.train()
    order = torch_generator(train.seed, epoch, net_id, ORDER)
    augment = torch_generator(train.seed, epoch, net_id, AUGMENT)
    subset = epoch_subset(ws, epoch, net_id, 2 * train.num_batches * train.batch_size)
    if subset is None:
        everything = torch.arange(ws.n_train, device=ws.device)
    else:
        everything = torch.as_tensor(subset, device=ws.device)
    values = []
    for index in batches(everything, 2 * train.batch_size, order):
        x = ws.train_batch(index, augment)
        values.append(
            warmup_step(net, optimizer, x, ws.noisy_labels[index], conf_penalty=conf_penalty, amp=train.amp)
        )
    ce, penalty, loss = host_values(values)  # one host sync per epoch
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
        "n_labeled": [len(everything)] * steps,
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
    """Train `net` for one epoch on `division` (co-divide: the one made by `peer`'s losses).

    An epoch is ceil(|labeled| / B) steps; num_iter = |labeled| // B + 1 is used only for the ramp,
    as in the reference. An empty labeled set skips the epoch for this network (the official code
    crashes); an empty unlabeled set trains on the labeled samples alone (Lu = 0). A division of
    a subset (Clothing1M protocol) trains on that subset's labeled and unlabeled samples.
    """
    train = ws.config.train
    ablation = ws.config.ablation
    lr = learning_rate(train, epoch)
    set_lr(optimizer, lr)
    divided = division.indices()
    labeled = torch.as_tensor(divided[division.labeled], device=ws.device)
    unlabeled = torch.as_tensor(divided[~division.labeled], device=ws.device)
    if division.sample_index is None:
        clean_prob = torch.as_tensor(division.clean_prob, dtype=torch.float32, device=ws.device)
    else:  # indexed by sample_index like the full set; samples outside the subset are never drawn
        full = np.zeros(ws.n_train, dtype=np.float32)
        full[divided] = division.clean_prob
        clean_prob = torch.as_tensor(full, device=ws.device)
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
            x1=ws.train_batch(x_index, augment),
            x2=ws.train_batch(x_index, augment),
            y=ws.noisy_labels[x_index],
            w=clean_prob[x_index],
            u1=ws.train_batch(u_index, augment),
            u2=ws.train_batch(u_index, augment),
        )
        if train.protocol == "clothing1m":
            lam = 0.0  # the Clothing1M step has no Lu term (the reference runs it with lambda_u = 0)
        else:
            lam = ramp_weight(train.lambda_u, epoch + step / num_iter, train.warmup_epochs, train.rampup_epochs)
        values.append(
            train_step(
                net, peer, optimizer, batch,
                num_classes=ws.num_classes, T=train.T, alpha=train.alpha, lambda_u=lam,
                rng=beta, generator=mixing, protocol=train.protocol,
                label_refinement=ablation.label_refinement, co_guessing=ablation.co_guessing, amp=train.amp,
            )
        )
        lambdas.append(lam)
    loss_x, loss_u, penalty, loss = host_values(values)  # one host sync per epoch
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
    """One row per network and divided sample (all N, or the Clothing1M protocol's sample)."""
    rows: dict[str, list] = {name: [] for name in artifacts.DIVISIONS.names}
    for net_id, d in divisions.items():
        index = d.indices()
        n = len(index)
        rows["epoch"].append(np.full(n, epoch, dtype=np.int32))
        rows["net"].append(np.full(n, net_id, dtype=np.int8))
        rows["sample_index"].append(index)
        rows["noisy_label"].append(noisy_labels if d.sample_index is None else noisy_labels[index])
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


def epoch_row(
    epoch: int,
    phase: str,
    accs: list[float],
    labeled: dict[int, int] | None,
    val: tuple[float, float, float | None] | None = None,
) -> dict:
    """One EPOCHS row; `val` = (val_acc_net1, val_acc_net2, test_acc_best_val) with a validation set."""
    return {
        "epoch": [epoch],
        "phase": [phase],
        "test_acc_net1": [accs[0]],
        "test_acc_net2": [accs[1]],
        "test_acc_ensemble": [accs[2]],
        "labeled_by_net1": [labeled[1] if labeled else None],
        "labeled_by_net2": [labeled[2] if labeled else None],
        "val_acc_net1": [val[0] if val else None],
        "val_acc_net2": [val[1] if val else None],
        "test_acc_best_val": [val[2] if val else None],
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
            prepared=root / layout.PREPARED,
            noisy=root / layout.NOISY_LABELS,
            warmup_checkpoint=root / layout.WARMUP_CHECKPOINT,
            warmup_artifacts=root / layout.WARMUP_ARTIFACTS,
            train_checkpoint=root / layout.TRAIN_CHECKPOINT,
            artifacts=root / layout.ARTIFACTS,
            baseline=root / layout.BASELINE_ARTIFACTS,
        )


def run_warmup(config: Config, paths: Paths, params: dict[str, Any], *, stream=None) -> dict[str, Any]:
    """Warm up both networks for `warmup_epochs` epochs; write their checkpoint and per-step losses.

    `params` (the keys the stage read, with values) is recorded in every output it writes.
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    train = config.train
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    best = BestValidation(ws) if ws.has_val else None
    # Rows of one file, kept as typed Arrow batches (about 50 bytes a step), not Python lists.
    losses, epochs = artifacts.RowBuffer("losses"), artifacts.RowBuffer("epochs")
    progress = Progress("warmup", train.warmup_epochs, stream=stream)
    for epoch in range(train.warmup_epochs):
        for i in NETS:  # net1 one full pass, then net2 one full pass
            losses.append(warmup_epoch(nets[i], optimizers[i], ws, epoch, i, conf_penalty=train.conf_penalty))
        accs = ensemble_accuracy([nets[1], nets[2]], ws)
        val = best.update(nets) if best is not None else None
        epochs.append(epoch_row(epoch, "warmup", accs, None, val))
        progress.update(epoch, test_acc=accs[2])
    progress.close()

    meta = {"params": params}
    artifacts.write_table(paths.warmup_artifacts / "losses.parquet", "losses", losses.table(), meta)
    artifacts.write_table(paths.warmup_artifacts / "epochs.parquet", "epochs", epochs.table(), meta)
    state = {
        "version": CHECKPOINT_VERSION,
        "params": params,
        "epoch": train.warmup_epochs - 1,
        "nets": {str(i): nets[i].state_dict() for i in NETS},
        "optimizers": {str(i): optimizers[i].state_dict() for i in NETS},
    }
    if best is not None:
        state["best_val"] = best.state()
    save_checkpoint(paths.warmup_checkpoint, state)
    return {"test_acc": accs[2]}


# The library modules training runs (the train stage's code deps in dvc.yaml). DVC reruns the
# stage when one changes; a checkpoint made by other code must then not be resumed, or the old
# code's epochs would be kept under the new code's name.
TRAINING_CODE = ("engine", "codivide", "mixmatch", "models", "data", "artifacts", "config")


def training_code_digest() -> dict[str, str]:
    package = Path(__file__).parent
    return {name: file_digest(package / f"{name}.py") for name in TRAINING_CODE}


def _train_fingerprint(params: dict[str, Any], paths: Paths) -> dict[str, Any]:
    """What a train checkpoint was made from: resume only if all of it is unchanged."""
    return {
        "params": params,
        "noisy_labels": file_digest(paths.noisy),
        "train_images": file_digest(paths.prepared / "train_images.npy"),
        "warmup": file_digest(paths.warmup_checkpoint),
        "code": training_code_digest(),
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
    Nothing is kept across epochs but the networks, optimisers, loss-history window (at most
    `loss_history` vectors) and, with a validation set, the best weights: each epoch's rows are
    written to its own files and dropped.
    """
    train = config.train  # (clothing1m with a loss-history window is refused by the config)
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    nets = {i: ws.new_net(i, pretrained=False) for i in NETS}  # weights come from a checkpoint
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    fingerprint = _train_fingerprint(params, paths)

    start, history, best_state = _restore(paths, ws, nets, optimizers, fingerprint)
    best = BestValidation(ws, best_state) if ws.has_val else None
    last_done = start - 1
    for name in _TRAIN_OUTPUTS:
        _clear_epochs(paths.artifacts / name, last_done)

    noisy_np = ws.noisy_labels.cpu().numpy()
    meta = {"params": params}
    # co-divide: net k trains on the division its peer's losses made (ablation: on its own).
    source = {1: 2, 2: 1} if config.ablation.co_divide else {1: 1, 2: 2}
    progress = Progress("train", train.epochs - train.warmup_epochs, initial=start - train.warmup_epochs, stream=stream)
    if start > train.warmup_epochs:
        progress.note(f"resuming after epoch {start - 1} from {paths.train_checkpoint}")
    for epoch in range(start, train.epochs):
        divisions = {
            i: co_divide_one(
                nets[i], ws.train_images, ws.noisy_labels, history[i],
                p_threshold=train.p_threshold, seed=derived_seed(train.seed, epoch, i, GMM),
                subset=epoch_subset(ws, epoch, i, train.num_batches * train.batch_size),
                eval_batch_size=train.eval_batch_size, amp=train.amp,
            )
            for i in NETS  # both divisions come from the networks *before* either trains
        }
        # net1 learns from net2's division; then net2 from net1's, with the already-updated net1 as peer.
        rows1 = dividemix_epoch(nets[1], nets[2], optimizers[1], ws, divisions[source[1]], epoch, 1)
        rows2 = dividemix_epoch(nets[2], nets[1], optimizers[2], ws, divisions[source[2]], epoch, 2)
        accs = ensemble_accuracy([nets[1], nets[2]], ws)
        val = best.update(nets) if best is not None else None
        labeled = {i: int(divisions[i].labeled.sum()) for i in NETS}

        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "divisions", epoch), "divisions",
                              division_rows(epoch, divisions, noisy_np), meta)
        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "mixtures", epoch), "mixtures",
                              mixture_rows(epoch, divisions), meta)
        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "losses", epoch), "losses",
                              merge_rows(rows1, rows2), meta)
        artifacts.write_table(artifacts.epoch_file(paths.artifacts / "epochs", epoch), "epochs",
                              epoch_row(epoch, "dividemix", accs, labeled, val), meta)
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": fingerprint,
            "epoch": epoch,
            "nets": {str(i): nets[i].state_dict() for i in NETS},
            "optimizers": {str(i): optimizers[i].state_dict() for i in NETS},
            "history": {str(i): history[i].state() for i in NETS},
        }
        if best is not None:
            state["best_val"] = best.state()
        save_checkpoint(paths.train_checkpoint, state)
        progress.update(epoch, test_acc=accs[2], labeled_by_net1=labeled[1], labeled_by_net2=labeled[2])
        del divisions, rows1, rows2, state  # nothing of this epoch outlives it
    progress.close()
    return {"epochs": train.epochs}


def _restore(
    paths: Paths, ws: Workspace, nets: dict, optimizers: dict, fingerprint: dict
) -> tuple[int, dict, dict | None]:
    """Load the train checkpoint if it was made from the same inputs, else the warm-up checkpoint.

    Returns the first epoch to run, each network's loss history and the best-validation state
    (None without one).
    """
    train = ws.config.train
    if paths.train_checkpoint.exists():
        state = load_checkpoint(paths.train_checkpoint, ws.device)
        if state.get("version") == CHECKPOINT_VERSION and state.get("fingerprint") == fingerprint:
            for i in NETS:
                nets[i].load_state_dict(state["nets"][str(i)])
                optimizers[i].load_state_dict(state["optimizers"][str(i)])
            history = {i: LossHistory(train.loss_history, [t.cpu() for t in state["history"][str(i)]]) for i in NETS}
            return int(state["epoch"]) + 1, history, state.get("best_val")
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
    return train.warmup_epochs, {i: LossHistory(train.loss_history) for i in NETS}, state.get("best_val")


def run_baseline(config: Config, paths: Paths, params: dict[str, Any], *, stream=None) -> dict:
    """Plain cross-entropy on the same noisy labels, same model and epochs, one network.

    Its epochs are warm-up epochs (`warmup_epoch`): the same augmentation (ablation.augmentation),
    and under the Clothing1M protocol the same class-balanced 2 * num_batches * batch_size sample.
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    train = config.train
    net = ws.new_net(1)
    optimizer = make_optimizer(net, train)
    losses = artifacts.RowBuffer("losses")  # typed Arrow batches, not Python lists (300 epochs: ~6 MB)
    accs = []
    progress = Progress("baseline", train.epochs, stream=stream)
    for epoch in range(train.epochs):
        rows = warmup_epoch(net, optimizer, ws, epoch, 1, conf_penalty=False)
        rows["net"] = [0] * len(rows["net"])  # net 0: the baseline
        losses.append(rows)
        logits = ws.logits(net, ws.test_images)
        acc = float((logits.argmax(1) == ws.test_labels).float().mean())
        accs.append(acc)
        progress.update(epoch, test_acc=acc)
    progress.close()
    meta = {"params": params}
    artifacts.write_table(paths.baseline / "losses.parquet", "losses", losses.table(), meta)
    artifacts.write_table(
        paths.baseline / "epochs.parquet", "baseline_epochs", {"epoch": list(range(train.epochs)), "test_acc": accs}, meta
    )
    return {"test_acc_last": accs[-1]}
