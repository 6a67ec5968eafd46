"""The cross-entropy baseline: one network, plain cross-entropy on the same noisy labels, the same
model, epochs, schedule and augmentation; what DivideMix is compared with."""

from __future__ import annotations

from typing import Any

from dividemix import artifacts
from dividemix.config import Config
from dividemix.layout import Paths
from dividemix.progress import Progress
from dividemix.training.optim import make_optimizer
from dividemix.training.warmup import warmup_epoch
from dividemix.training.workspace import Workspace


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
