"""Testing during training: each network's and the ensemble's top-1 and top-5 accuracy on every
test set every epoch (the reference's WebVision test: torchnet's ClassErrorMeter(topk=[1, 5]) on
the summed logits, on WebVision val and ImageNet val), and the Clothing1M protocol's
best-validation weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dividemix.images.batches import ImageBatches
from dividemix.training.workspace import NETS, Workspace


@dataclass(frozen=True)
class Accuracy:
    """One classifier's accuracy on one set, as fractions: top-1 (and top-5 where measured)."""

    top1: float
    top5: float | None = None


@dataclass(frozen=True)
class Accuracies:
    """Each network's and the ensemble's accuracy on one set. Under ablation.ensemble_test false
    the ensemble's figure (the one reported as DivideMix's) is net1's."""

    net1: Accuracy
    net2: Accuracy
    ensemble: Accuracy


@dataclass(frozen=True)
class EpochTests:
    """An epoch's test figures: the test set, and the second test set where the data has one."""

    test: Accuracies
    test2: Accuracies | None = None


# The reference's top-5 (WebVision: torchnet's ClassErrorMeter(topk=[1, 5])). With exactly 5
# classes torchnet counts every sample (100%); with fewer its topk(5) raises: None here.
TOP_K = 5


@dataclass(frozen=True)
class Validation:
    """One epoch's validation (the Clothing1M protocol): each network alone on the clean
    validation set, and the test accuracy of the ensemble of each network's best weights so far."""

    net1: float
    net2: float
    best_test: float | None


def set_accuracies(nets: list[nn.Module], ws: Workspace, images: ImageBatches, labels: torch.Tensor) -> Accuracies:
    """Top-1 (and top-5) accuracy of each network and of the ensemble (the sum of their logits)
    on one set, each from its own logits. A sample counts for top-k when its label is among the k
    largest logits. The logits are fp32 whatever train.amp (`Workspace.logits`)."""
    logits = [ws.logits(net, images) for net in nets]
    ensemble = sum(logits) if ws.config.ablation.ensemble_test else logits[0]
    k = TOP_K if logits[0].shape[1] >= TOP_K else 0
    hits = []
    for lg in (*logits, ensemble):
        hits.append((lg.argmax(1) == labels).float().mean())
        if k:
            hits.append((lg.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean())
    values = [float(v) for v in torch.stack(hits).cpu()]  # one host sync per set
    per_model = [values[i : i + (2 if k else 1)] for i in range(0, len(values), 2 if k else 1)]
    return Accuracies(*(Accuracy(top[0], top[1] if k else None) for top in per_model))


def ensemble_accuracy(nets: list[nn.Module], ws: Workspace) -> Accuracies:
    """Test accuracy of each network and of the ensemble (argmax of the sum of logits)."""
    return set_accuracies(nets, ws, ws.test_images, ws.test_labels)


def epoch_tests(nets: list[nn.Module], ws: Workspace) -> EpochTests:
    """Every test set of the data, every epoch (the second one where there is one)."""
    test2 = set_accuracies(nets, ws, ws.test2_images, ws.test2_labels) if ws.has_test2 else None
    return EpochTests(ensemble_accuracy(nets, ws), test2)


def progress_figures(tests: EpochTests) -> dict[str, float]:
    """The ensemble's figures for an epoch's progress line: test_acc (and top-5, the second set's)."""
    figures = {"test_acc": tests.test.ensemble.top1}
    if tests.test.ensemble.top5 is not None and tests.test2 is not None:  # the web data sets' four numbers
        figures["test_top5"] = tests.test.ensemble.top5
    if tests.test2 is not None:
        figures["test2_acc"] = tests.test2.ensemble.top1
        if tests.test2.ensemble.top5 is not None:
            figures["test2_top5"] = tests.test2.ensemble.top5
    return figures


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

    def update(self, nets: dict[int, nn.Module]) -> Validation:
        """Validate both networks, keep a network's weights if strictly better."""
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
            self.test_acc = ensemble_accuracy([self._nets[1], self._nets[2]], ws).ensemble.top1
        return Validation(accs[1], accs[2], self.test_acc)

    def state(self) -> dict[str, Any]:
        return {
            "acc": {str(i): self.acc[i] for i in NETS},
            "weights": {str(i): w for i, w in self.weights.items()},
            "test_acc": -1.0 if self.test_acc is None else self.test_acc,
        }


def best_val(best: BestValidation | None) -> dict:
    """The best-validation entry of a checkpoint (none without a validation set)."""
    return {} if best is None else {"best_val": best.state()}
