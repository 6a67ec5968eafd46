"""The cross-entropy baseline: one network, plain cross-entropy on the same noisy labels, the same
model, epochs, schedule and augmentation; what DivideMix is compared with."""

from __future__ import annotations

from typing import Any

from dividemix.config import Config
from dividemix.files import artifacts
from dividemix.files.atomic import atomic_dir
from dividemix.files.layout import Paths
from dividemix.run.live import LiveLog
from dividemix.run.progress import Progress
from dividemix.training.agreement import same_run
from dividemix.training.checkpoint import data_inputs, fingerprint, nets_state, restore_nets
from dividemix.training.optim import learning_rate, make_optimizer
from dividemix.training.resume import Resume
from dividemix.training.warmup import warmup_epoch
from dividemix.training.workspace import Workspace


def run_baseline(config: Config, paths: Paths, params: dict[str, Any], *, live: LiveLog | None = None,
                 stream=None) -> dict:
    """Plain cross-entropy on the same noisy labels, same model and epochs, one network.

    Its epochs are warm-up epochs (`warmup_epoch`): the same augmentation (ablation.augmentation),
    and under the Clothing1M protocol the same class-balanced 2 * num_batches * batch_size sample.
    Resumable per epoch, as the warm-up (`training.resume`); the outputs are written at the end;
    `live` gets each epoch's test accuracy and learning rate (DVCLive).
    """
    ws = Workspace.load(config, paths.prepared, paths.noisy)
    same_run(ws.cluster, params, __name__)  # every machine: the writer's parameters and code
    train, cluster = config.train, ws.cluster
    net = ws.new_net(1)
    optimizer = make_optimizer(net, train)
    inputs = data_inputs(paths, config.model.pretrained)
    resume = Resume(paths.resume / "baseline", fingerprint(params, inputs, __name__))
    start = restore_nets(cluster.object_from_writer(resume.load(ws.state_device) if cluster.is_writer else None),
                         {0: net}, {0: optimizer})
    trainer = cluster.data_parallel(net)
    meta = {"params": params}
    if live is not None and cluster.is_writer:
        live.start((r["epoch"], {"test_acc": r["test_acc"], "lr": learning_rate(train, r["epoch"])})
                   for r in resume.kept_records("epochs", start - 1))
    progress = Progress("baseline", train.epochs, initial=start, first_epoch=start, resumed=start > 0,
                        stream=ws.writer_stream(stream))
    for epoch in range(start, train.epochs):
        losses = warmup_epoch(trainer, optimizer, ws, epoch, 1, conf_penalty=False)
        losses["net"] = [0] * len(losses["net"])  # net 0: the baseline
        cluster.sync_buffers(net)
        acc = float((ws.logits(net, ws.test_images).argmax(1) == ws.test_labels).float().mean())
        if cluster.is_writer:  # the one process that writes
            resume.keep_rows("losses", epoch, "losses", losses, meta)
            resume.keep_rows("epochs", epoch, "baseline_epochs", {"epoch": [epoch], "test_acc": [acc]}, meta)
            resume.save_state(nets_state(resume.fingerprint, epoch, {0: net}, {0: optimizer}))
            if live is not None:  # after the checkpoint: a logged epoch is a committed one
                live.epoch(epoch, {"test_acc": acc, "lr": learning_rate(train, epoch)})
        progress.update(epoch, test_acc=acc)
    progress.close()
    if cluster.is_writer:
        last = train.epochs - 1
        with atomic_dir(paths.baseline) as folder:  # whole or not at all, no stale file
            artifacts.write_table(folder / "losses.parquet", "losses", resume.kept_rows("losses", last), meta)
            artifacts.write_table(folder / "epochs.parquet", "baseline_epochs", resume.kept_rows("epochs", last), meta)
        resume.clear()
    return {"epochs": train.epochs}
