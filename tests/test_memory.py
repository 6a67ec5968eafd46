"""Memory does not grow with the number of epochs: a training run keeps only what the next epoch
needs (networks, optimisers, the loss-history window); each epoch's rows go to its own files.
"""

from __future__ import annotations

import gc
import io
import shutil

import pyarrow as pa
import torch

import dividemix.training.train as train_loop
from conftest import run_paths, stage_params, tiny_params
from dividemix.config import parse_config, select
from dividemix.files import artifacts
from dividemix.method.codivide import Division
from dividemix.training.rows import merge_rows


def live(kind: type) -> int:
    gc.collect()
    return sum(type(obj) is kind for obj in gc.get_objects())


def test_run_train_keeps_no_data_of_past_epochs(tiny_run, tmp_path, monkeypatch):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    (root / "checkpoints/train/last.pt").unlink()
    seen = []
    real_save = train_loop.save_checkpoint

    def counting_save(path, state):
        # at the end of each epoch: this epoch's two divisions, none of an earlier one
        seen.append((state["epoch"], live(Division), [len(state["history"][str(i)]) for i in (1, 2)]))
        real_save(path, state)

    monkeypatch.setattr(train_loop, "save_checkpoint", counting_save)
    before = live(Division)
    config = parse_config(tiny_params(**{"train.epochs": 5, "train.lr_drop_epoch": 4, "train.loss_history": 2}))
    train_loop.run_train(config, run_paths(root), select(config, stage_params("train")))
    assert [epoch for epoch, _, _ in seen] == [2, 3, 4]
    assert all(count - before == 2 for _, count, _ in seen), seen
    # the loss history is bounded by its window (2), however many epochs ran
    assert [lengths for _, _, lengths in seen] == [[1, 1], [2, 2], [2, 2]]
    assert live(Division) == before  # and nothing is left once the run returns


def loss_rows(epoch: int, steps: int) -> dict:
    return {
        "epoch": [epoch] * steps, "net": [0] * steps, "step": list(range(steps)), "lr": [0.02] * steps,
        "lambda_u": [0.0] * steps, "loss_x": [0.5 + s / 1000 for s in range(steps)], "loss_u": [0.0] * steps,
        "penalty": [0.0] * steps, "loss": [0.5 + s / 1000 for s in range(steps)], "n_labeled": [50000] * steps,
        "n_unlabeled": [0] * steps,
    }


def test_row_buffer_holds_compact_arrow_rows_and_writes_the_same_file(tmp_path):
    """The baseline's 300 epochs x 391 steps: typed Arrow columns, not a Python object per value."""
    buffer = artifacts.RowBuffer("losses")
    for epoch in range(300):
        buffer.append(loss_rows(epoch, 391))
    assert len(buffer) == 300 * 391
    assert all(isinstance(batch, pa.RecordBatch) for batch in buffer.batches)
    nbytes = sum(batch.nbytes for batch in buffer.batches)
    assert nbytes / len(buffer) <= 50  # the columns' widths: 4+1+4+8+8+4*4+4+4 = 49 bytes a row
    # written, the file is the one the merged Python rows give
    few = artifacts.RowBuffer("losses")
    parts = [loss_rows(epoch, 7) for epoch in range(3)]
    for part in parts:
        few.append(part)
    artifacts.write_table(tmp_path / "a.parquet", "losses", few.table(), {"k": 1})
    artifacts.write_table(tmp_path / "b.parquet", "losses", merge_rows(*parts), {"k": 1})
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_write_table_refuses_a_table_of_another_schema(tmp_path):
    table = pa.table({"epoch": pa.array([1], pa.int64())})
    try:
        artifacts.write_table(tmp_path / "x.parquet", "losses", table)
    except artifacts.ArtifactError as exc:
        assert "losses" in str(exc)
    else:
        raise AssertionError("a table of another schema was written")
    assert not (tmp_path / "x.parquet").exists()


def test_a_checkpoint_holds_the_history_window_not_the_epochs(tiny_run):
    """The resume checkpoint's size does not depend on the number of epochs run."""
    state = torch.load(tiny_run / "checkpoints/train/last.pt", weights_only=True)
    assert all(len(state["history"][str(i)]) == 1 for i in (1, 2))  # loss_history 1
    buffer = io.BytesIO()
    torch.save(state["history"], buffer)
    assert len(buffer.getvalue()) < 2 * 1437 * 4 + 4096  # two float32 vectors of N and the archive
