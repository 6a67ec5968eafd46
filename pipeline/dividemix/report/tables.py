"""The report's tables: the setting, DivideMix against the baseline, and the paper's number."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dividemix.judging.evaluation import EXTRA_CURVES
from dividemix.paper.preset import PROTOCOL_NAMES, PaperFigure
from dividemix.paper.presets import describe_departures, find_preset, preset_differences

NOT_APPLICABLE = "—"  # a cell that has no meaning (e.g. the baseline has no division)
UNDEFINED = "n/a"  # a metric that is undefined for this run (null in the metrics JSON)


def format_percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals; None (or NaN) is 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNDEFINED
    return f"{100.0 * value:.2f}%"


def setting_rows(params: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows describing the run: data, noise, model and the DivideMix parameters."""
    epochs, warmup = params["train.epochs"], params["train.warmup_epochs"]
    return [
        ("Data set (data.dataset)", f"{params['data.dataset']} ({summary['n_train']} training samples)"),
        ("Noise mode (noise.mode)", str(params["noise.mode"])),
        ("Noise rate (noise.rate)", format_percent(params["noise.rate"])),
        ("Noise seed (noise.seed)", str(params["noise.seed"])),
        (
            "Actual noise rate (wrong labels)",
            f"{format_percent(summary['noise_rate_actual'])} ({summary['n_wrong']} of {summary['n_train']})"
            if summary["noise_rate_actual"] is not None else "unknown (the training truth is not known)",
        ),
        *([("Noisy labels (noise.file, noise.key)", f"{params['noise.file']}, key {params['noise.key']}")]
          if params["noise.mode"] == "file" else []),
        ("Model (model.arch)", str(params["model.arch"])),
        ("Training protocol (train.protocol)", str(params["train.protocol"])),
        ("Epochs (train.epochs)", f"{epochs} ({warmup} warm-up + {epochs - warmup} DivideMix)"),
        ("Warm-up epochs (train.warmup_epochs)", str(warmup)),
        ("Unlabeled loss weight λu (train.lambda_u)", str(params["train.lambda_u"])),
        ("Clean probability threshold τ (train.p_threshold)", str(params["train.p_threshold"])),
        ("Epochs of loss history for the mixture (train.loss_history)", str(params["train.loss_history"])),
    ]


RESULTS_HEADER = ("", "DivideMix", "Cross-entropy baseline")


def results_rows(metrics: dict[str, Any], test2_name: str | None = None, *,
                 paper_last: bool = True) -> list[tuple[str, str, str]]:
    """DivideMix against the baseline, as percentages, the mean of the last 10 epochs first (the
    paper's "last" where its table has one: `paper_last` false for the web data sets)."""
    pct = format_percent
    return [
        (last10_label(metrics, paper_last), pct(metrics["test_acc_last10"]), NOT_APPLICABLE),
        ("Last epoch's test accuracy", pct(metrics["test_acc_last"]), pct(metrics["ce_test_acc_last"])),
        ("Best epoch's test accuracy (chosen on the test set: an oracle)", pct(metrics["test_acc_best"]),
         pct(metrics["ce_test_acc_best"])),
        ("Division AUC, last epoch", pct(metrics["division_auc_last"]), NOT_APPLICABLE),
        ("Division precision, last epoch", pct(metrics["division_precision_last"]), NOT_APPLICABLE),
        ("Division recall, last epoch", pct(metrics["division_recall_last"]), NOT_APPLICABLE),
        *truth_rows(metrics),
        # With a clean validation set: the ensemble of each network's best-validation weights.
        *([("Test accuracy of the best-validation weights", pct(metrics["test_acc_best_val"]), NOT_APPLICABLE)]
          if metrics.get("test_acc_best_val") is not None else []),
        *extra_rows(metrics, test2_name),
    ]


def extra_rows(metrics: dict[str, Any], test2_name: str | None = None) -> list[tuple[str, str, str]]:
    """Top-5 and the second test set's figures, where the run measured them (last 10, last, best)."""
    second = test2_name or "the second test set"
    names = {"test_top5": "test top-5", "test2_acc": f"{second} top-1", "test2_top5": f"{second} top-5"}
    rows = []
    for key in EXTRA_CURVES:  # evaluation's figures, in its order
        name = names[key]
        if metrics.get(f"{key}_last") is None:
            continue
        rows.append((f"DivideMix {name}: last 10 / last / best epoch (an oracle)",
                     " / ".join(format_percent(metrics.get(f"{key}_{which}")) for which in ("last10", "last", "best")),
                     NOT_APPLICABLE))
    return rows


def truth_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What the division figures rest on, and the export's labels against the same truth."""
    source, n = metrics.get("truth"), metrics.get("division_truth_n_last")
    if source is None:  # the setting's table already says the truth is unknown
        return []
    basis = f"{n} samples, all with their true label" if source == "full" else \
        f"{n} samples of the verified subset (data.truth_list)"
    rows = [("Division figures rest on", basis, NOT_APPLICABLE)]
    for key, count, label in (("export_relabel_accuracy", "export_relabelled_n", "Export: relabelled samples whose new label is true"),
                              ("export_cleaned_accuracy", "export_cleaned_n", "Export: cleaned labels that are true")):
        if key in metrics:
            rows.append((f"{label} (of {metrics[count]})", format_percent(metrics[key]), NOT_APPLICABLE))
    return rows


def last10_label(metrics: dict[str, Any], paper_last: bool = True) -> str:
    """The headline's row: over which DivideMix epochs it is taken, or why there is none. The paper's
    "last" only where its table has one (CIFAR): Clothing1M's and WebVision's tables have none."""
    first = metrics.get("test_acc_last10_from_epoch")
    name = "the paper's \"last\"" if paper_last else "Clothing1M's and WebVision's tables give no \"last\""
    if metrics["test_acc_last10"] is None or first is None:
        return f"Last 10 DivideMix epochs, mean test accuracy ({name}): fewer than 10 in this run"
    return f"Last 10 DivideMix epochs, mean test accuracy ({name}; epochs {first}-{first + 9})"


# The data sets whose paper tables give other figures than "best" and "last" (`PaperFigure`).
WEB_DATASETS = ("clothing1m", "webvision")


RESULTS_NOTE = (
    "DivideMix accuracies are those of the ensemble (the sum of both networks' logits). Division "
    "measures are the mean over both networks: precision is the fraction of the labeled set that is "
    "truly clean, recall the fraction of the truly clean samples that were labeled, AUC that of the "
    f"clean probability for the true clean mask. {UNDEFINED}: undefined for this run (e.g. the AUC "
    f"when no label is wrong); {NOT_APPLICABLE}: does not apply."
)


NO_PAPER_CELL = "No paper cell for this setting (the paper reports CIFAR-10/100 sym 20-90% and asym 40%, " \
    "CIFAR-N, Clothing1M and WebVision)."
PAPER_HEADER = ("", "This run", "Paper")


@dataclass(frozen=True)
class PaperComparison:
    """The paper's number for the run's cell beside the run's own, or a note that there is none."""

    preset: str | None
    rows: list[tuple[str, str, str]]
    note: str
    header: tuple[str, str, str] = PAPER_HEADER  # "Paper (network)" when the paper's figure used another one


def figure_value(figure: PaperFigure, metrics: dict[str, Any]) -> str:
    """The run's figure measured as the paper's `figure` was, or why there is none like it."""
    if figure.protocol == "best_val":
        if metrics.get("test_acc_best_val") is not None:
            return f"{format_percent(metrics['test_acc_best_val'])} (best-validation weights)"
        return (f"no validation set: not like for like (last 10: {format_percent(metrics.get('test_acc_last10'))}, "
                f"best epoch, an oracle: {format_percent(metrics.get('test_acc_best'))})")
    key, first = figure.metric, metrics.get("test_acc_last10_from_epoch")
    span = f", epochs {first}-{first + 9}" if first is not None else ""
    return (f"{format_percent(metrics.get(f'{key}_last10'))} (last 10{span}) · {format_percent(metrics.get(f'{key}_last'))} "
            f"(last) · {format_percent(metrics.get(f'{key}_best'))} (best epoch, an oracle)")


def _paper_percent(value: float | None) -> str:
    return "not reported" if value is None else f"{value:.2f}%"


def paper_comparison(params: dict[str, Any], metrics: dict[str, Any]) -> PaperComparison:
    """Best and last of this run against the paper's cell (`presets.find_preset`), when there is one.

    The paper's "last" is the mean of the last 10 epochs: compared with `test_acc_last10`. The paper's
    number is set beside the run's only like for like (`presets.preset_differences` empty); otherwise
    the Paper column says not like for like and the note lists the departures.
    """
    preset = find_preset(params)
    if preset is None:
        return PaperComparison(None, [], NO_PAPER_CELL)
    differences = preset_differences(params, preset.name)
    paper = _paper_percent if not differences else (lambda value: NOT_LIKE)
    if preset.figures:
        rows = [(figure.label, figure_value(figure, metrics), paper(figure.value)) for figure in preset.figures]
    else:
        rows = [
            (last10_label(metrics), format_percent(metrics["test_acc_last10"]), paper(preset.paper_last)),
            ("Best epoch's test accuracy (an oracle)", format_percent(metrics["test_acc_best"]),
             paper(preset.paper_best)),
        ]
    note = f"Paper cell: preset {preset.name} ({preset.description}); `dividemix preset show {preset.name}`."
    header = _paper_header(preset)
    if preset.paper_network is not None:
        note += (f" The paper's figure was obtained with another network, {preset.paper_network}; this run's "
                 f"model.arch is {params['model.arch']}.")
    if differences:
        note += (f" Not like for like: this run departs from the preset in {describe_departures(differences)}; "
                 "the paper's numbers are "
                 "not set beside it.")
    else:
        note += (" Like for like: this run uses the preset's values for every parameter that changes the figure "
                 "(data locations, seeds, workers, storage, precision and distributed.* aside).")
    return PaperComparison(preset.name, rows, note, header)


NOT_LIKE = "not like for like (see below)"


def _paper_header(preset) -> tuple[str, str, str]:
    """The Paper column's label: which figure the paper's number is."""
    if preset.paper_network is not None:
        return ("", "This run", f"Paper: {preset.paper_network}")
    if preset.figures:
        protocols = dict.fromkeys(PROTOCOL_NAMES[figure.protocol] for figure in preset.figures)
        return ("", "This run", f"Paper ({'; '.join(protocols)})")
    return PAPER_HEADER
