"""One DivideMix epoch of one network: MixMatch steps on the division its peer's losses made.

The reference's `train()` in Train_cifar.py (and Train_clothing1M.py under the Clothing1M
protocol): B labeled samples and B unlabeled samples a step, the unlabeled iterator restarted
whenever exhausted, lambda_u ramped over fractional epochs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dividemix.config import TrainConfig
from dividemix.device import host_to_device
from dividemix.images.views import ViewDraws, views_for
from dividemix.method.codivide import Division
from dividemix.method.mixmatch import LABELED_MIX_ONLY, MixDraws, StepBatch, StepLosses, StepOptions, ramp_weight, train_step
from dividemix.training import rows
from dividemix.training.optim import learning_rate, set_lr
from dividemix.training.sampling import batches, endless_batches
from dividemix.training.shares import spread_of
from dividemix.training.streams import EpochStreams
from dividemix.training.workspace import Workspace


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

    Under several processes (`ws.cluster`) every process draws the same batches of B and trains
    on its share of each (`net` is then the DDP wrapper, which averages the gradients), its loss
    terms weighted by its share (`StepBatch.spread`): the global batch stays B and the step's
    gradient is the one a single process would apply to it. The step's losses recorded are the
    mean over the processes of their weighted terms: the global batch's.
    """
    train = ws.config.train
    lr = learning_rate(train, epoch)
    set_lr(optimizer, lr)
    labeled, unlabeled, clean_prob = split_tensors(ws, division)
    n_labeled, n_unlabeled = len(labeled), len(unlabeled)
    if n_labeled == 0:
        return rows.loss_rows(epoch, net_id, lr, lambda_u=[], losses=StepLosses.to_host([]), n_labeled=0,
                              n_unlabeled=n_unlabeled)

    net.train()  # the peer is put in eval mode by each train_step
    cluster = ws.cluster
    cluster.sync_buffers(peer)  # the peer guesses with the writer's statistics in every process
    streams = EpochStreams(train.seed, epoch, net_id, rank=cluster.rank)
    view_draws = ViewDraws(weak=streams.augment(), strong=streams.strong())
    step_views = views_for(train.augment, train.strong_policy)  # train.augment's policy (images.views)
    draws = MixDraws(beta=streams.mix_beta(), permutation=streams.mix_permutation())
    options = step_options(ws)
    unlabeled_batches = endless_batches(unlabeled, train.batch_size, streams.unlabeled()) if n_unlabeled else None
    empty = torch.empty(0, dtype=torch.int64)
    num_iter = n_labeled // train.batch_size + 1

    steps, lambdas = [], []
    for step, x_index in enumerate(batches(labeled, train.batch_size, streams.order())):
        u_index = next(unlabeled_batches) if unlabeled_batches is not None else empty
        spread = spread_of(cluster, x_index, u_index)  # None alone
        x_index, u_index = cluster.split(x_index), cluster.split(u_index)  # this process's share
        v = step_views(ws.train_images, ws.train_pair, x_index, u_index, view_draws)  # this process's share
        on_device = host_to_device(x_index, ws.device)
        batch = StepBatch(x1=v.x1, x2=v.x2, y=ws.noisy_labels[on_device], w=clean_prob[on_device], u1=v.u1, u2=v.u2,
                          spread=spread, mix=v.mix)
        lam = step_lambda_u(train, epoch + step / num_iter)
        steps.append(train_step(net, peer, optimizer, batch, lambda_u=lam, options=options, draws=draws))
        lambdas.append(lam)
    return rows.loss_rows(epoch, net_id, lr, lambda_u=lambdas, losses=StepLosses.to_host(steps, cluster.mean),
                          n_labeled=n_labeled, n_unlabeled=n_unlabeled)


def step_options(ws: Workspace) -> StepOptions:
    """The epoch's fixed step options, from the parameters (train.*, ablation.*)."""
    train, ablation = ws.config.train, ws.config.ablation
    return StepOptions(num_classes=ws.num_classes, T=train.T, alpha=train.alpha, protocol=train.protocol,
                       label_refinement=ablation.label_refinement, co_guessing=ablation.co_guessing, amp=train.amp)


def split_tensors(ws: Workspace, division: Division) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The labeled and unlabeled training indices of `division` (on the host: the rows to read are
    known there without a device sync), and every sample's clean probability indexed by
    sample_index, on the device (samples outside a Clothing1M subset: 0, never drawn)."""
    divided = division.indices()
    labeled = torch.as_tensor(divided[division.labeled])
    unlabeled = torch.as_tensor(divided[~division.labeled])
    if division.sample_index is None:
        clean_prob = torch.as_tensor(division.clean_prob, dtype=torch.float32, device=ws.device)
    else:
        full = np.zeros(ws.n_train, dtype=np.float32)
        full[divided] = division.clean_prob
        clean_prob = torch.as_tensor(full, device=ws.device)
    return labeled, unlabeled, clean_prob


def step_lambda_u(train: TrainConfig, progress: float) -> float:
    """lambda_u at fractional epoch `progress`: ramped (cifar); 0 under clothing1m and webvision,
    whose step has no Lu term (the reference runs them with lambda_u = 0)."""
    if train.protocol in LABELED_MIX_ONLY:
        return 0.0
    return ramp_weight(train.lambda_u, progress, train.warmup_epochs, train.rampup_epochs)
