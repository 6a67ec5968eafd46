"""The arithmetic and the words of the distributed path, without starting a process: each
process's share and the order of a gather, the launch arguments, which failure is the root
cause and the one line that says it, the distributed keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_params
from dividemix.cluster import launch
from dividemix.cluster.group import Cluster
from dividemix.config import parse_config

TWO = {"distributed.processes_per_machine": 2, "distributed.timeout_s": 120}


def test_shares_cover_every_item_once_in_strides_padded_to_equal_sizes():
    """7 items over 3 processes: 0 3 6 | 1 4 0 | 2 5 1 (the last ones wrap round to the front);
    the gather's order, j * world + rank, puts them back as 0..6 and drops the repeats."""
    shares = [Cluster(rank=r, world=3).shard(7).tolist() for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]
    stacked = torch.tensor(shares)  # what all_gather_single returns, one share after the other
    rows = stacked.reshape(-1).view(3, 3).transpose(0, 1).reshape(-1)[:7]
    assert rows.tolist() == list(range(7))
    assert Cluster().shard(5).tolist() == [0, 1, 2, 3, 4]


def test_a_batch_is_split_every_world_th_sample_and_a_tiny_one_repeated():
    batch = torch.tensor([10, 11, 12, 13, 14])
    assert [Cluster(rank=r, world=2).split(batch).tolist() for r in (0, 1)] == [[10, 12, 14], [11, 13]]
    assert [Cluster(rank=r, world=4).split(torch.tensor([7, 8])).tolist() for r in range(4)] == [[7], [8], [7], [8]]
    assert Cluster(rank=1, world=2).split(torch.empty(0, dtype=torch.int64)).tolist() == []
    assert Cluster().split(batch) is batch  # one process: the batch itself


def failure(exitcode: int, timestamp: int, message: str = ""):
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, message=message)


def test_the_root_cause_is_the_killed_process_else_the_first_failure():
    """A killed rank (SIGKILL) is the cause, not the ranks the agent then stopped (SIGTERM) nor
    those whose collectives failed after it; without a kill, the first recorded failure."""
    killed = {0: failure(1, 100, "Connection closed by peer"), 1: failure(-9, 101), 2: failure(-15, 99)}
    assert launch.root_cause(killed) == launch.Ending(1, -9, "")
    errors = {0: failure(2, 105, "later"), 1: failure(2, 103, "data/prepared: missing\n  twice")}
    assert launch.root_cause(errors) == launch.Ending(1, 2, "data/prepared: missing twice")


def test_an_ending_is_one_line_naming_rank_epoch_and_resume():
    killed = launch.Ending(1, -9, "Signal 9 (SIGKILL) received by PID 7")
    assert launch.ending_line("train", killed, 12) == ("train: rank 1 died (SIGKILL) during epoch 13; the other "
                                                       "processes were stopped; `dvc repro` resumes after epoch 12")
    assert launch.ending_line("warmup", killed, None).endswith("`dvc repro` starts warmup at epoch 0")
    assert launch.ending_line("train", launch.Ending(0, 2, "bad file"), 3) == "error: train: rank 0: bad file"
    # the workers stopped by a forwarded Ctrl-C / SIGTERM (exit 130 / 143): an interrupt, not an error
    assert launch.ending_line("train", launch.Ending(0, 130, ""), 5) == (
        "train: interrupted during epoch 6; `dvc repro` resumes after epoch 5")


def test_distributed_keys_are_refused_in_one_line():
    with pytest.raises(Exception, match="distributed.rendezvous: needed with several machines"):
        parse_config(tiny_params(**{"distributed.machines": 2}))
    with pytest.raises(Exception, match="distributed.rendezvous: must be host:port"):
        parse_config(tiny_params(**{"distributed.rendezvous": "somewhere"}))
    with pytest.raises(Exception, match="distributed.processes_per_machine"):
        parse_config(tiny_params(**{"distributed.processes_per_machine": 0}))


def test_one_process_launches_nothing_and_keeps_todays_path():
    from dividemix.cluster import launch

    assert not launch.needs_launch(parse_config(tiny_params()).distributed)
    assert launch.needs_launch(parse_config(tiny_params(**TWO)).distributed)
    args = launch.elastic_args(parse_config(tiny_params(**TWO)).distributed, "train", ["stages/train.py"])
    assert "--standalone" in args and "--nproc-per-node=2" in args and args[-1] == "stages/train.py"
    two = parse_config(tiny_params(**{"distributed.machines": 2, "distributed.rendezvous": "127.0.0.1:29400"}))
    args = launch.elastic_args(two.distributed, "train", ["stages/train.py"])
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:29400", "--rdzv-id=dividemix-train",
            "--local-addr=127.0.0.1"} <= set(args)



