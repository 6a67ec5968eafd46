"""The train stage's loop: co-divide, then one DivideMix epoch of each network, every epoch.

The official Train_cifar.py main loop after warm-up: both divisions are made by the networks
*before* either trains; net1 learns from net2's division, then net2 from net1's with the
already-updated net1 as its peer. Resumable per epoch: each epoch's artifacts are written, then
the checkpoint; a run killed at any point restarts from its last finished epoch and ends with the
same artifacts as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from dividemix.cluster.group import Cluster
from dividemix.config import Config, TrainConfig
from dividemix.device import host_to_device
from dividemix.files import artifacts
from dividemix.files.layout import Paths
from dividemix.method.codivide import Division, LossHistory, Mixture, divide
from dividemix.method.selection import SelectionInputs, select
from dividemix.run.live import LiveLog
from dividemix.run.progress import Progress
from dividemix.training import rows
from dividemix.training.agreement import same_run
from dividemix.training.checkpoint import (
    CHECKPOINT_VERSION,
    clear_epochs,
    load_checkpoint,
    nets_state,
    restore_nets,
    save_checkpoint,
    train_fingerprint,
)
from dividemix.training.dividemix_epoch import dividemix_epoch
from dividemix.training.optim import learning_rate, make_optimizer
from dividemix.training.resume import STATE, Resume, link_or_copy
from dividemix.training.sampling import epoch_subset
from dividemix.training.streams import EpochStreams
from dividemix.training.testing import BestValidation, best_val, epoch_tests, progress_figures
from dividemix.training.workspace import NETS, Workspace

TRAIN_OUTPUTS = ("divisions", "mixtures", "losses", "epochs")  # per-epoch folders under paths.artifacts


def run_train(
    config: Config, paths: Paths, params: dict[str, Any], *, live: LiveLog | None = None, stream=None
) -> dict:
    """Co-divide + MixMatch epochs from the warm-up checkpoint to `epochs`, resumable per epoch.

    Nothing is kept across epochs but the networks, optimisers, loss-history window (at most
    `loss_history` vectors) and, with a validation set, the best weights: each epoch's rows are
    written to its own files and dropped. `params` is recorded in every file written; `live` gets
    each epoch's figures (DVCLive), the resumed run's past epochs first.
    """
    train = config.train  # (clothing1m with a loss-history window is refused by the config)
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    same_run(ws.cluster, params, __name__)  # every machine: the writer's parameters and code
    cluster = ws.cluster
    nets = {i: ws.new_net(i, pretrained=False) for i in NETS}  # weights come from a checkpoint
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    resume = Resume(paths.resume / "train", train_fingerprint(params, paths))

    state = cluster.object_from_writer(starting_state(paths, ws, resume) if cluster.is_writer else None)
    start, history, best_state = restore(state, ws, nets, optimizers)
    trainers = {i: cluster.data_parallel(nets[i]) for i in NETS}  # (the networks themselves, alone)
    best = BestValidation(ws, best_state) if ws.has_val else None
    if cluster.is_writer:
        for name in TRAIN_OUTPUTS:
            clear_epochs(paths.artifacts / name, start - 1)
        if live is not None:
            live.start(past_figures(paths, train, start))
    noisy = ws.noisy_labels.cpu().numpy()  # the division files' noisy_label column
    # co-divide: net k trains on the division its peer's losses made (ablation: on its own).
    source = {1: 2, 2: 1} if config.ablation.co_divide else {1: 1, 2: 2}
    progress = Progress("train", train.epochs - train.warmup_epochs, initial=start - train.warmup_epochs,
                        first_epoch=start, resumed=start > train.warmup_epochs, stream=ws.writer_stream(stream))
    if start > train.warmup_epochs:
        progress.note(f"resuming after epoch {start - 1} from {paths.train_checkpoint}")
    for epoch in range(start, train.epochs):
        divisions = {i: divide_for(nets[i], ws, history[i], epoch, i, nets[3 - i]) for i in NETS}
        rows1 = dividemix_epoch(trainers[1], nets[2], optimizers[1], ws, divisions[source[1]], epoch, 1)
        rows2 = dividemix_epoch(trainers[2], nets[1], optimizers[2], ws, divisions[source[2]], epoch, 2)
        for net in nets.values():
            cluster.sync_buffers(net)
        tests = epoch_tests([nets[1], nets[2]], ws)
        val = best.update(nets) if best is not None else None
        labeled = {i: int(divisions[i].labeled.sum()) for i in NETS}
        epoch_rows = rows.epoch_row(epoch, "dividemix", tests, labeled, val)
        if cluster.is_writer:  # the one process that writes
            extra = {"history": {str(i): history[i].state() for i in NETS}} | best_val(best)
            commit_epoch(paths, resume, epoch, {"divisions": rows.division_rows(epoch, divisions, noisy),
                                                "mixtures": rows.mixture_rows(epoch, divisions),
                                                "losses": rows.merge_rows(rows1, rows2), "epochs": epoch_rows},
                         nets_state(resume.fingerprint, epoch, nets, optimizers, extra), {"params": params},
                         notes={"divisions": rows.selection_notes(divisions)})
            if live is not None:  # after the checkpoint: a logged epoch is a committed one
                live.epoch(epoch, rows.epoch_figures(rows.single(epoch_rows), learning_rate(train, epoch)))
        progress.update(epoch, **progress_figures(tests), labeled_by_net1=labeled[1], labeled_by_net2=labeled[2])
        del divisions, rows1, rows2  # nothing of this epoch outlives it
    progress.close()
    if cluster.is_writer:
        resume.clear()  # finished: the outputs (and DVC's cache) hold the run
    return {"epochs": train.epochs}


def past_figures(paths: Paths, train: TrainConfig, start: int) -> list[tuple[int, dict]]:
    """The figures of the epochs a resumed run has done (its epoch files, epochs before `start`)."""
    folder = paths.artifacts / "epochs"
    if not folder.is_dir() or not artifacts.parquet_files(folder):
        return []
    done = artifacts.read_table(folder, "epochs").to_dict("records")
    return [(int(r["epoch"]), rows.epoch_figures(r, learning_rate(train, int(r["epoch"])))) for r in done
            if r["epoch"] < start]


def divide_for(net, ws: Workspace, history: LossHistory, epoch: int, net_id: int, peer=None) -> Division:
    """The division network `net_id`'s losses make this epoch (its own seed for the mixture fit),
    by the rule train.selection names (`method.selection`; `peer`'s logits join only under
    train.selection_ensemble).

    The losses are computed in float32 whatever train.amp: the reference fits its mixture on fp32
    losses, and bf16 logits (8 bits of mantissa) would round the small losses of clean samples
    together, where the two components meet. (Not measured against bf16: fp32 is the reference.)
    Under several processes each evaluates its share, all get every loss in sample order, and the
    writer's mixture is everyone's (`shared_division`): one division, whatever the processes.
    """
    train = ws.config.train
    subset = epoch_subset(ws, epoch, net_id, train.num_batches * train.batch_size)
    index = None if subset is None else torch.as_tensor(subset, dtype=torch.int64)
    logits = ws.logits(net, ws.train_images, index, amp=False)
    labels = ws.noisy_labels if index is None else ws.noisy_labels[host_to_device(index, ws.device)]
    seed = EpochStreams(train.seed, epoch, net_id).mixture_seed()
    peer_logits = ws.logits(peer, ws.train_images, index, amp=False) if train.selection_ensemble else None
    division = select(train.selection, SelectionInputs(logits, labels, ws.num_classes, history, train.p_threshold,
                                                       seed, subset, peer_logits))
    return shared_division(ws.cluster, division, train.p_threshold)


def shared_division(cluster: Cluster, division: Division, p_threshold: float) -> Division:
    """The writer's fit of the mixture in every process (every process fitted the same losses;
    a process on another machine type may round differently, and then the labeled sets and the
    step counts would differ: the collectives would wait for each other forever)."""
    if not cluster.spread:
        return division
    if division.mixture is None:  # a rule without a mixture: the writer's weights and labeled set
        prob = cluster.from_writer(torch.as_tensor(division.clean_prob, dtype=torch.float64).to(cluster.device))
        labeled = cluster.from_writer(torch.as_tensor(division.labeled, dtype=torch.int64).to(cluster.device))
        return dataclasses.replace(division, clean_prob=prob.cpu().numpy(), labeled=labeled.cpu().numpy() > 0)
    m = division.mixture
    fit = torch.tensor([*m.means, *m.variances, *m.weights, m.clean], dtype=torch.float64, device=cluster.device)
    fit = cluster.from_writer(fit).tolist()
    prob = cluster.from_writer(torch.as_tensor(division.clean_prob, dtype=torch.float64).to(cluster.device)).cpu().numpy()
    mixture = Mixture(means=tuple(fit[0:2]), variances=tuple(fit[2:4]), weights=tuple(fit[4:6]), clean=int(fit[6]))
    return dataclasses.replace(division, clean_prob=prob, labeled=divide(prob, p_threshold), mixture=mixture)


def commit_epoch(paths: Paths, resume: Resume, epoch: int, tables: dict, state: dict, meta: dict, *,
                 notes: dict | None = None) -> None:
    """The epoch's four artifacts, each written atomically into its per-epoch folder, then its
    checkpoint; kept for resume, the checkpoint last: it commits the epoch. `notes`: more metadata
    for some of them (a selection rule's record in the divisions' file; none for the GMM)."""
    written = []
    for name, table in tables.items():
        path = artifacts.epoch_file(paths.artifacts / name, epoch)
        artifacts.write_table(path, name, table, meta | (notes or {}).get(name, {}))
        written.append(path)
    save_checkpoint(paths.train_checkpoint, state)
    for path in written:
        resume.keep(path, path.relative_to(paths.artifacts).as_posix())
    resume.keep_state(paths.train_checkpoint)


def starting_state(paths: Paths, ws: Workspace, resume: Resume) -> dict:
    """The checkpoint to start from: the furthest run made from the same inputs (kept by `resume`,
    or the outputs' own checkpoint), else the warm-up's ({"warmup": True} added)."""
    device = ws.state_device
    kept = resume.load(device)
    published = None
    if paths.train_checkpoint.exists():
        published = load_checkpoint(paths.train_checkpoint, device)
        if published.get("version") != CHECKPOINT_VERSION or published.get("fingerprint") != resume.fingerprint:
            published = None
            paths.train_checkpoint.unlink()  # made from other inputs: start over
    if kept is not None and (published is None or kept["epoch"] > published["epoch"]):
        put_back(paths, resume)  # DVC replaced the outputs (dvc exp run checks out the committed ones)
        return kept
    if published is not None:
        return published
    state = load_checkpoint(paths.warmup_checkpoint, device)
    if state["epoch"] != ws.config.train.warmup_epochs - 1:
        raise ValueError(
            f"{paths.warmup_checkpoint}: warmed up for {state['epoch'] + 1} epochs, train.warmup_epochs is "
            f"{ws.config.train.warmup_epochs}; rerun the warmup stage"
        )
    return {**state, "warmup": True}


def restore(state: dict, ws: Workspace, nets: dict, optimizers: dict) -> tuple[int, dict, dict | None]:
    """Load `state` (`starting_state`'s) into the networks and optimisers; the first epoch to run,
    each network's loss history and the best-validation state (None without one)."""
    train = ws.config.train
    start = restore_nets(state, nets, optimizers)
    if state.get("warmup"):
        return train.warmup_epochs, {i: LossHistory(train.loss_history) for i in NETS}, state.get("best_val")
    history = {i: LossHistory(train.loss_history, [t.cpu() for t in state["history"][str(i)]]) for i in NETS}
    return start, history, state.get("best_val")


def put_back(paths: Paths, resume: Resume) -> None:
    """The kept epochs and checkpoint back in the outputs (later epochs are cleared by the caller)."""
    for name in TRAIN_OUTPUTS:
        for kept in resume.kept(name):
            link_or_copy(resume.path(kept), paths.artifacts / kept)
    link_or_copy(resume.path(STATE), paths.train_checkpoint)
