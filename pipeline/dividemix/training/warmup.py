"""Warm-up: plain cross-entropy on all noisy labels (+ the confidence penalty), before any division.

The reference's `warmup()`: batch 2B, net1 one full pass then net2 one full pass, each epoch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dividemix.config import Config
from dividemix.device import host_to_device, logits_of
from dividemix.files import artifacts
from dividemix.files.atomic import atomic_dir
from dividemix.files.layout import Paths
from dividemix.method.losses import Share, StepLosses, confidence_penalty
from dividemix.run.live import LiveLog
from dividemix.run.progress import Progress
from dividemix.training import rows
from dividemix.training.agreement import same_run
from dividemix.training.checkpoint import data_inputs, fingerprint, nets_state, restore_nets, save_checkpoint
from dividemix.training.optim import learning_rate, make_optimizer, set_lr
from dividemix.training.resume import Resume
from dividemix.training.sampling import batches, epoch_subset
from dividemix.training.shares import share_of
from dividemix.training.streams import EpochStreams
from dividemix.training.testing import BestValidation, best_val, epoch_tests, progress_figures
from dividemix.training.workspace import NETS, Workspace


def warmup_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    conf_penalty: bool,
    amp: bool = False,
    share: Share | None = None,
) -> StepLosses:
    """Plain cross-entropy on noisy labels (+ negative entropy if `conf_penalty`); the cross-entropy
    is reported as `loss_x` (Lu = 0).

    `amp`: the forward pass under bf16 autocast, the losses in float32. `share`: the batch is this
    process's share of a global batch; both terms are means over samples, weighted by the share so
    that DDP's average of the processes' gradients is the global batch's (uneven shares too).
    """
    logits = logits_of(net, images, amp=amp)
    ce = F.cross_entropy(logits, labels)
    penalty = confidence_penalty(logits) if conf_penalty else ce.new_zeros(())
    if share is not None:
        ce, penalty = ce * share.weight, penalty * share.weight
    loss = ce + penalty
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return StepLosses(ce.detach(), ce.new_zeros(()), penalty.detach(), loss.detach())


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
    streams = EpochStreams(train.seed, epoch, net_id, rank=ws.cluster.rank)
    augment = streams.augment()
    subset = epoch_subset(ws, epoch, net_id, 2 * train.num_batches * train.batch_size)
    if subset is None:
        everything = torch.arange(ws.n_train)  # (on the host: the rows to read are known there)
    else:
        everything = torch.as_tensor(subset)
    steps = []
    for batch in batches(everything, 2 * train.batch_size, streams.order()):
        index = ws.cluster.split(batch)  # this process's share of the batch (all of it alone)
        x = ws.train_batch(index, augment)
        labels = ws.noisy_labels[host_to_device(index, ws.device)]
        steps.append(warmup_step(net, optimizer, x, labels, conf_penalty=conf_penalty, amp=train.amp,
                                 share=share_of(ws.cluster, batch)))
    return rows.loss_rows(epoch, net_id, lr, lambda_u=[0.0] * len(steps), losses=StepLosses.to_host(steps, ws.cluster.mean),
                          n_labeled=len(everything), n_unlabeled=0)


def run_warmup(
    config: Config, paths: Paths, params: dict[str, Any], *, live: LiveLog | None = None, stream=None
) -> dict[str, Any]:
    """Warm up both networks for `warmup_epochs` epochs; write their checkpoint and per-step losses.

    Resumable per epoch (`training.resume`): each epoch's rows and the networks are kept until the
    last epoch, then the outputs are written whole. `params` (the keys the stage read, with
    values) is recorded in every output it writes; `live` gets each epoch's figures (DVCLive).
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    same_run(ws.cluster, params, __name__)  # every machine: the writer's parameters and code
    train, cluster = config.train, ws.cluster
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    inputs = data_inputs(paths, config.model.pretrained)
    resume = Resume(paths.resume / "warmup", fingerprint(params, inputs, __name__))
    kept = cluster.object_from_writer(resume.load(ws.state_device) if cluster.is_writer else None)
    start = restore_nets(kept, nets, optimizers)
    trainers = {i: cluster.data_parallel(nets[i]) for i in NETS}  # (the networks themselves, alone)
    best = BestValidation(ws, kept.get("best_val") if kept else None) if ws.has_val else None
    meta = {"params": params}
    if live is not None and cluster.is_writer:
        live.start((r["epoch"], rows.epoch_figures(r, learning_rate(train, r["epoch"])))
                   for r in resume.kept_records("epochs", start - 1))
    progress = Progress("warmup", train.warmup_epochs, initial=start, first_epoch=start, resumed=start > 0,
                        stream=ws.writer_stream(stream))
    for epoch in range(start, train.warmup_epochs):
        # net1 one full pass, then net2 one full pass
        losses = rows.merge_rows(*(warmup_epoch(trainers[i], optimizers[i], ws, epoch, i, conf_penalty=train.conf_penalty)
                                   for i in NETS))
        for net in nets.values():
            cluster.sync_buffers(net)
        tests = epoch_tests([nets[1], nets[2]], ws)
        val = best.update(nets) if best is not None else None
        record = rows.epoch_row(epoch, "warmup", tests, None, val)
        if cluster.is_writer:  # the one process that writes
            resume.keep_rows("losses", epoch, "losses", losses, meta)
            resume.keep_rows("epochs", epoch, "epochs", record, meta)
            resume.save_state(nets_state(resume.fingerprint, epoch, nets, optimizers, best_val(best)))
            if live is not None:  # after the checkpoint: a logged epoch is a committed one
                live.epoch(epoch, rows.epoch_figures(rows.single(record), learning_rate(train, epoch)))
        progress.update(epoch, **progress_figures(tests))
    progress.close()
    if cluster.is_writer:
        write_warmup(paths, resume, nets_state(resume.fingerprint, train.warmup_epochs - 1, nets, optimizers,
                                               best_val(best)), params)
    return {"epochs": train.warmup_epochs}


def write_warmup(paths: Paths, resume: Resume, state: dict, params: dict[str, Any]) -> None:
    """The stage's outputs, whole: its epochs' rows, the checkpoint; then its kept progress goes."""
    last, meta = state["epoch"], {"params": params}
    with atomic_dir(paths.warmup_artifacts) as folder:  # whole or not at all, no stale file
        for name in ("losses", "epochs"):
            artifacts.write_table(folder / f"{name}.parquet", name, resume.kept_rows(name, last), meta)
    save_checkpoint(paths.warmup_checkpoint, {**state, "params": params})
    resume.clear()
