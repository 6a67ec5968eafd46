"""Presets beyond the paper: its CIFAR cells at 80/90% symmetric noise with the opt-in switches
(train.augment, train.selection), and the published numbers of the methods they come from.

Sources (shared/reference/selection.md):
- AugDesc-WS, "DivideMix+" (Nishi et al., CVPR 2021): best / last from the results table of
  KentoNishi/Augmentation-for-LNL@908a22b README (selection.md section 3); its hyper-parameters are
  DivideMix's (presets.json L240-244 for CIFAR-10 90%: p_threshold 0.6, lambda_u 50, average_loss 5),
  its strong policy AutoAugment's CIFAR-10 policy (train_cifar.py). Only the views change: the
  preset is the DivideMix cell with train.augment weak_strong.
- UNICON (Karim et al., CVPR 2022): one figure per cell from its paper's Table 1, as recalled in
  selection.md section 1 (marked there [recalled]: not re-fetched, check against the PDF). UNICON's
  figure is its whole method: the uniform selection and the weak/strong split that these switches
  give, plus a contrastive loss, lambda_u 30, 350 epochs and a cosine schedule that this pipeline
  does not run; so the preset names it as another method's figure (`paper_network`) and a run is
  never called like for like with it.
"""

from __future__ import annotations

from dividemix.paper.cifar_presets import _cifar_preset
from dividemix.paper.preset import Preset

CELLS = (("cifar10", 0.8), ("cifar10", 0.9), ("cifar100", 0.8), ("cifar100", 0.9))
# AugDesc README (selection.md section 3): (best, last), percent.
AUGDESC_WS = {("cifar10", 0.8): (93.77, 93.64), ("cifar10", 0.9): (91.88, 91.76),
              ("cifar100", 0.8): (66.36, 66.05), ("cifar100", 0.9): (41.20, 40.90)}
# UNICON's Table 1 (selection.md section 1, [recalled]): one figure per cell, percent.
UNICON = {("cifar10", 0.8): 93.9, ("cifar10", 0.9): 90.8, ("cifar100", 0.8): 63.9, ("cifar100", 0.9): 44.8}
UNICON_METHOD = ("UNICON's whole method (its contrastive loss, lambda_u 30, 350 epochs, cosine schedule: "
                 "not run here)")
AUGDESC = {"train.augment": "weak_strong", "train.strong_policy": "autoaugment_cifar10", "train.selection": "gmm"}
UNIFORM = {"train.augment": "weak_strong", "train.strong_policy": "autoaugment_cifar10", "train.selection": "uniform_jsd",
           "train.selection_ensemble": True, "train.loss_history": 1}


def _augdesc(dataset: str, rate: float) -> Preset:
    cell = _cifar_preset(dataset, "sym", rate)
    best, last = AUGDESC_WS[(dataset, rate)]
    notes = ("result: AugDesc-WS 'DivideMix+' (Nishi et al., CVPR 2021), KentoNishi/Augmentation-for-LNL README",
             "the DivideMix cell with weak views for guessing and refinement, AutoAugment (CIFAR-10 policy) views "
             "for MixMatch; warm-up and the division's eval pass unchanged")
    return Preset(f"{cell.name}-augdesc-ws", "successors", f"{cell.description.split(':')[0]}: AugDesc-WS",
                  {**cell.overrides, **AUGDESC}, best, last, notes)


def _unicon(dataset: str, rate: float) -> Preset:
    cell = _cifar_preset(dataset, "sym", rate)
    notes = ("result: UNICON (Karim et al., CVPR 2022) Table 1, recalled in shared/reference/selection.md, not "
             "re-fetched: check it against the paper",
             "UNICON's selection (uniform JSD, both networks' ensemble) and weak/strong views inside DivideMix's "
             "loop and hyper-parameters (loss_history 1: the rule keeps no history); UNICON's figure includes "
             "its contrastive loss and schedule, which this pipeline does not run")
    return Preset(f"{cell.name}-unicon", "successors", f"{cell.description.split(':')[0]}: UNICON's selection and views",
                  {**cell.overrides, **UNIFORM}, UNICON[(dataset, rate)], None, notes, paper_network=UNICON_METHOD)


def successor_presets() -> list[Preset]:
    """AugDesc-WS, then UNICON, per cell."""
    return [_augdesc(*cell) for cell in CELLS] + [_unicon(*cell) for cell in CELLS]
