"""Warm-up: plain cross-entropy on all noisy labels (+ the confidence penalty), before any division.

The reference's `warmup()`: batch 2B, net1 one full pass then net2 one full pass, each epoch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dividemix import artifacts
from dividemix.config import Config
from dividemix.device import logits_of
from dividemix.layout import Paths
from dividemix.progress import Progress
from dividemix.seeds import AUGMENT, ORDER, torch_generator
from dividemix.training import rows
from dividemix.training.checkpoint import CHECKPOINT_VERSION, save_checkpoint
from dividemix.training.optim import learning_rate, make_optimizer, set_lr
from dividemix.training.sampling import batches, epoch_subset
from dividemix.training.testing import BestValidation, ensemble_accuracy
from dividemix.training.workspace import NETS, Workspace


def confidence_penalty(logits: torch.Tensor) -> torch.Tensor:
    """Negative entropy mean(sum(p log p)), the reference's `NegEntropy` for warm-up under asym noise."""
    # softmax * log_softmax, not the reference's probs.log() * probs: the same value, but no
    # NaN (0 * -inf) when a float32 probability rounds to 0.
    return torch.mean(torch.sum(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1), dim=1))


def warmup_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    conf_penalty: bool,
    amp: bool = False,
) -> torch.Tensor:
    """Plain cross-entropy on noisy labels (+ negative entropy if `conf_penalty`); returns (ce, penalty, loss).

    `amp`: the forward pass under bf16 autocast, the losses in float32.
    """
    logits = logits_of(net, images, amp=amp)
    ce = F.cross_entropy(logits, labels)
    penalty = confidence_penalty(logits) if conf_penalty else ce.new_zeros(())
    loss = ce + penalty
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return torch.stack([ce, penalty, loss]).detach()


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
    ce, penalty, loss = rows.host_values(values)  # one host sync per epoch
    return rows.loss_rows(
        epoch, net_id, lr, lambda_u=[0.0] * len(ce), loss_x=ce, loss_u=[0.0] * len(ce), penalty=penalty, loss=loss,
        n_labeled=len(everything), n_unlabeled=0,
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
        epochs.append(rows.epoch_row(epoch, "warmup", accs, None, val))
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
