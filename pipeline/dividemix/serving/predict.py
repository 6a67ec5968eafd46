"""The ensemble's predictions over a stream of images, written as Parquet (and CSV) row batch by batch.

The ensemble is the test accuracy's: the predicted class is the argmax of the sum of both
networks' logits; its probabilities are softmax(logits1 + logits2), the normalised product of the
two networks' probabilities (so its argmax is that class). Images are decoded one batch at a time,
so a folder of any size streams in bounded memory; the files appear whole at the end or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch

from dividemix.datasets.image_decode import ImageDecodeError
from dividemix.files.atomic import atomic_path
from dividemix.serving.inputs import FILE_SCALE, Item, ServingError
from dividemix.serving.run_model import RunModel

SCHEMA_NAME, SCHEMA_VERSION = "predictions", 1
Batch = tuple[list[str], np.ndarray, list[int | None]]  # shown paths, uint8 (n, C, S, S), labels


@dataclass
class Summary:
    n: int
    n_labelled: int
    correct: int
    written: list[Path]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n_labelled if self.n_labelled else None


def file_batches(model: RunModel, items: list[Item], batch_size: int) -> Iterator[tuple[Batch, float]]:
    """Image files, a batch at a time, through the run's evaluation transform; an unreadable one refused."""
    prep = model.preprocessing
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        rows = []
        for item in chunk:
            try:
                rows.append(prep.file_row(item.path))
            except ImageDecodeError as exc:
                raise ServingError(f"{item.path}: unreadable image ({exc}); nothing written") from None
        yield ([i.shown for i in chunk], np.stack(rows), [i.label for i in chunk]), FILE_SCALE


def split_batches(model: RunModel, split: str, batch_size: int) -> Iterator[tuple[Batch, float]]:
    """The run's own prepared split (its evaluation crop already taken), a batch at a time."""
    images, labels = model.split_arrays(split)
    for start in range(0, len(images), batch_size):
        end = min(start + batch_size, len(images))
        shown = [f"{split}:{i}" for i in range(start, end)]
        yield (shown, images[start:end], [int(v) for v in labels[start:end]]), model.preprocessing.stored_scale


class Ensemble(torch.nn.Module):
    """Both networks on one normalised batch: (probabilities, logits, net1 logits, net2 logits)."""

    def __init__(self, net1: torch.nn.Module, net2: torch.nn.Module):
        super().__init__()
        self.net1, self.net2 = net1, net2

    def forward(self, images: torch.Tensor):
        logits1, logits2 = self.net1(images), self.net2(images)
        logits = logits1 + logits2
        return logits.softmax(1), logits, logits1, logits2


def normalise(batch: np.ndarray, model: RunModel, scale: float, device: torch.device) -> torch.Tensor:
    """As the training's eval passes: (pixel - mean * scale) / (std * scale), in float32."""
    shape = (1, -1, 1, 1)
    mean = torch.tensor(model.preprocessing.mean, device=device).view(shape) * scale
    std = torch.tensor(model.preprocessing.std, device=device).view(shape) * scale
    return (torch.as_tensor(batch).to(device).float() - mean) / std


def batch_table(model: RunModel, batch: Batch, outputs, top_k: int) -> pa.Table:
    shown, _, labels = batch
    probs, _, logits1, logits2 = (t.float().cpu() for t in outputs)
    k = min(top_k, model.num_classes)
    top_p, top_c = probs.topk(k, dim=1)
    columns = {"path": pa.array(shown, pa.string()), "label": pa.array(labels, pa.int64())}
    predicted = top_c[:, 0].numpy().astype(np.int64)
    columns["predicted"] = pa.array(predicted)
    columns["predicted_name"] = pa.array([model.classes[c] for c in predicted], pa.string())
    columns["probability"] = pa.array(top_p[:, 0].numpy().astype(np.float32))
    for j in range(k):
        columns[f"top{j + 1}"] = pa.array(top_c[:, j].numpy().astype(np.int64))
        columns[f"top{j + 1}_probability"] = pa.array(top_p[:, j].numpy().astype(np.float32))
    for name, logits in (("net1", logits1), ("net2", logits2)):
        own = logits.softmax(1)
        columns[f"{name}_predicted"] = pa.array(own.argmax(1).numpy().astype(np.int64))
        columns[f"{name}_probability"] = pa.array(own.max(1).values.numpy().astype(np.float32))
    return pa.table(columns)


def targets(out: str | Path, csv: bool) -> tuple[Path, Path | None]:
    """--out FILE.parquet, and FILE.csv beside it with --csv; a wrong suffix refused before any work."""
    out = Path(out)
    if out.suffix != ".parquet":
        raise ServingError(f"--out {out}: expected FILE.parquet (with --csv, FILE.csv is written beside it)")
    if out.is_dir():
        raise ServingError(f"--out {out}: a folder; expected FILE.parquet")
    return out, out.with_suffix(".csv") if csv else None


@torch.no_grad()
def predict(model: RunModel, batches: Iterator[tuple[Batch, float]], *, out: Path, csv: Path | None,
            total: int, top_k: int = 5, device: torch.device = torch.device("cpu"), progress: bool | None = None) -> Summary:
    """Run the ensemble over `batches` and write `out` (and `csv`): whole at the end, or nothing."""
    from tqdm import tqdm

    ensemble = Ensemble(*model.networks(device)).eval()
    meta = {"run": model.source.name, "weights": model.weights, "weights_described": model.describe(),
            "epoch": model.epoch, "arch": model.arch, "classes": model.classes}
    summary = Summary(0, 0, 0, [p for p in (out, csv) if p is not None])
    with ExitStack() as stack, tqdm(total=total, unit="image", disable=progress is False or None, leave=False) as bar:
        parquet_tmp = stack.enter_context(atomic_path(out))
        csv_tmp = stack.enter_context(atomic_path(csv)) if csv is not None else None
        writers = {}
        for batch, scale in batches:
            table = batch_table(model, batch, ensemble(normalise(batch[1], model, scale, device)), top_k)
            if not writers:
                schema = table.schema.with_metadata({"dividemix.schema": SCHEMA_NAME,
                                                     "dividemix.schema_version": str(SCHEMA_VERSION),
                                                     "dividemix.meta": json.dumps(meta)})
                writers["parquet"] = stack.enter_context(pq.ParquetWriter(parquet_tmp, schema))
                if csv_tmp is not None:
                    writers["csv"] = stack.enter_context(pa_csv.CSVWriter(csv_tmp, table.schema))
            for writer in writers.values():
                writer.write_table(table)
            labels = np.array([-1 if v is None else v for v in batch[2]])
            known = labels >= 0
            summary.n += len(labels)
            summary.n_labelled += int(known.sum())
            summary.correct += int((table.column("predicted").to_numpy()[known] == labels[known]).sum())
            bar.update(len(labels))
    return summary
