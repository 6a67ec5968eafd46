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
from dividemix.io import atomic_dir
from dividemix.layout import Paths
from dividemix.live import LiveLog
from dividemix.progress import Progress
from dividemix.seeds import AUGMENT, ORDER, torch_generator
from dividemix.training import rows
from dividemix.training.checkpoint import CHECKPOINT_VERSION, data_inputs, fingerprint, save_checkpoint
from dividemix.training.optim import learning_rate, make_optimizer, set_lr
from dividemix.training.resume import Resume
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


def run_warmup(
    config: Config, paths: Paths, params: dict[str, Any], *, live: LiveLog | None = None, stream=None
) -> dict[str, Any]:
    """Warm up both networks for `warmup_epochs` epochs; write their checkpoint and per-step losses.

    Resumable per epoch (`training.resume`): each epoch's rows and the networks are kept until the
    last epoch, then the outputs are written whole. `params` (the keys the stage read, with
    values) is recorded in every output it writes; `live` gets each epoch's figures (DVCLive).
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    train = config.train
    nets = {i: ws.new_net(i) for i in NETS}
    optimizers = {i: make_optimizer(nets[i], train) for i in NETS}
    inputs = data_inputs(paths, config.model.pretrained)
    resume = Resume(paths.resume / "warmup", fingerprint(params, inputs, __name__))
    kept = resume.load(ws.device)
    start = restore_nets(kept, nets, optimizers)
    best = BestValidation(ws, kept.get("best_val") if kept else None) if ws.has_val else None
    meta = {"params": params}
    if live is not None:
        live.start((r["epoch"], rows.epoch_figures(r, learning_rate(train, r["epoch"])))
                   for r in resume.kept_records("epochs", start - 1))
    progress = Progress("warmup", train.warmup_epochs, initial=start, first_epoch=start, resumed=start > 0, stream=stream)
    for epoch in range(start, train.warmup_epochs):
        # net1 one full pass, then net2 one full pass
        losses = rows.merge_rows(*(warmup_epoch(nets[i], optimizers[i], ws, epoch, i, conf_penalty=train.conf_penalty)
                                   for i in NETS))
        accs = ensemble_accuracy([nets[1], nets[2]], ws)
        val = best.update(nets) if best is not None else None
        resume.keep_rows("losses", epoch, "losses", losses, meta)
        record = rows.epoch_row(epoch, "warmup", accs, None, val)
        resume.keep_rows("epochs", epoch, "epochs", record, meta)
        resume.save_state(nets_state(resume.fingerprint, epoch, nets, optimizers, best))
        if live is not None:  # after the checkpoint: a logged epoch is a committed one
            live.epoch(epoch, rows.epoch_figures(rows.single(record), learning_rate(train, epoch)))
        progress.update(epoch, test_acc=accs[2])
    progress.close()

    last = train.warmup_epochs - 1
    with atomic_dir(paths.warmup_artifacts) as folder:  # whole or not at all, no stale file
        for name in ("losses", "epochs"):
            artifacts.write_table(folder / f"{name}.parquet", name, resume.kept_rows(name, last), meta)
    state = nets_state(resume.fingerprint, last, nets, optimizers, best)
    save_checkpoint(paths.warmup_checkpoint, {**state, "params": params})
    resume.clear()
    return {"epochs": train.warmup_epochs}


def restore_nets(kept: dict[str, Any] | None, nets: dict, optimizers: dict) -> int:
    """Load a kept checkpoint's networks and optimisers; the first epoch to run (0 without one)."""
    if kept is None:
        return 0
    for i in nets:
        nets[i].load_state_dict(kept["nets"][str(i)])
        optimizers[i].load_state_dict(kept["optimizers"][str(i)])
    return int(kept["epoch"]) + 1


def nets_state(fingerprint: dict, epoch: int, nets: dict, optimizers: dict, best: BestValidation | None) -> dict:
    """A checkpoint of networks and optimisers after `epoch` (and the best-validation state)."""
    state = {
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "nets": {str(i): net.state_dict() for i, net in nets.items()},
        "optimizers": {str(i): optimizer.state_dict() for i, optimizer in optimizers.items()},
    }
    if best is not None:
        state["best_val"] = best.state()
    return state
