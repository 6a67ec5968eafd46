"""The arithmetic and the words of the distributed path, without starting a process: each
process's share and the order of a gather, the launch arguments, which failure is the root
cause and the one line that says it, the distributed keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_params
from dividemix.cluster import announce, launch
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
    shares = [Cluster(rank=r, world=2).split(batch) for r in (0, 1)]
    assert [share.tolist() for share in shares] == [[10, 12, 14], [11, 13]]
    assert all(share.is_contiguous() for share in shares)  # one copy to the device, pinned as it is
    assert [Cluster(rank=r, world=4).split(torch.tensor([7, 8])).tolist() for r in range(4)] == [[7], [8], [7], [8]]
    assert Cluster(rank=1, world=2).split(torch.empty(0, dtype=torch.int64)).tolist() == []
    assert Cluster().split(batch) is batch  # one process: the batch itself


def test_the_real_samples_of_a_share_are_counted_and_the_repeats_weigh_nothing():
    """B = 7 on 3 processes: 3, 2, 2 real samples; a last batch of 2 on 3: 1, 1 and a repeat (0);
    each share's weight makes the P weighted means, averaged, the mean over the global batch."""
    from dividemix.training.shares import share_of

    assert [Cluster(rank=r, world=3).real(7) for r in range(3)] == [3, 2, 2]
    assert [Cluster(rank=r, world=3).real(2) for r in range(3)] == [1, 1, 0]
    values = torch.arange(7, dtype=torch.float64)
    parts = []
    for r in range(3):
        cluster = Cluster(rank=r, world=3)
        share = share_of(cluster, torch.arange(7))
        parts.append(values[cluster.split(torch.arange(7))].mean() * share.weight)
    assert float(sum(parts) / 3) == pytest.approx(float(values.mean()))
    assert share_of(Cluster(rank=2, world=3), torch.arange(2)).weight == 0.0
    assert share_of(Cluster(), torch.arange(7)) is None  # one process: its step is unchanged


def test_the_gather_puts_every_processs_share_back_in_sample_order(monkeypatch):
    """`Cluster.gather` itself, with all_gather_single standing in for the processes: 7 items over
    3 processes, 1-D losses and 2-D logits, the wrapped repeats dropped."""
    n, world = 7, 3
    table = torch.arange(n * 2, dtype=torch.float32).view(n, 2)
    for shape in ("losses", "logits"):
        locals_ = []
        for r in range(world):
            rows = table[Cluster(rank=r, world=world).shard(n)]
            locals_.append(rows[:, 0] if shape == "losses" else rows)

        def all_gather_single(out, local, parts=tuple(locals_)):  # what gloo returns: one share after the other
            out.copy_(torch.cat([part.reshape(-1) for part in parts]))

        monkeypatch.setattr(torch.distributed, "all_gather_single", all_gather_single)
        for r in range(world):
            gathered = Cluster(rank=r, world=world).gather(locals_[r], n)
            assert torch.equal(gathered, table[:, 0] if shape == "losses" else table), (shape, r)


def failure(exitcode: int, timestamp: int, message: str = ""):
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, message=message)


def test_the_root_cause_is_the_killed_process_else_its_own_error_else_a_lost_machine(tmp_path):
    """A killed rank (SIGKILL) is the cause, not the ranks the agent then stopped (SIGTERM) nor
    those whose collectives failed after it; a process's own error is the cause even when another
    process's collective failed first, in the same second or before; when every process here
    failed inside a collective, the cause is a process lost on another machine."""
    lost = launch.COLLECTIVE + "Connection closed by peer"
    killed = {0: failure(1, 100, lost), 1: failure(-9, 101), 2: failure(-15, 99)}
    assert launch.root_cause(killed) == launch.Ending(1, -9, "")
    errors = {0: failure(2, 100, lost), 1: failure(2, 103, "data/prepared: missing\n  twice")}
    assert launch.root_cause(errors) == launch.Ending(1, 2, "data/prepared: missing twice")
    (tmp_path / "0").write_text("4")  # each worker's epoch, as `note_epoch` leaves it
    (tmp_path / "1").write_text("3")
    remote = launch.root_cause({0: failure(2, 100, lost), 1: failure(-15, 100)}, launch.reached(tmp_path))
    assert remote == launch.Ending(0, 2, "Connection closed by peer", epoch=4, remote=True)


def test_an_ending_is_one_line_naming_rank_epoch_and_resume():
    killed = launch.Ending(1, -9, "Signal 9 (SIGKILL) received by PID 7")
    assert launch.ending_line("train", killed, 12) == ("train: rank 1 died (SIGKILL) during epoch 13; the other "
                                                       "processes were stopped; `dvc repro` resumes after epoch 12")
    assert launch.ending_line("warmup", killed, None).endswith("`dvc repro` starts warmup at epoch 0")
    assert launch.ending_line("train", launch.Ending(0, 2, "bad file"), 3) == "error: train: rank 0: bad file"
    # the workers stopped by a forwarded Ctrl-C / SIGTERM (exit 130 / 143): an interrupt, not an error
    assert launch.ending_line("train", launch.Ending(0, 130, ""), 5) == (
        "train: interrupted during epoch 6; `dvc repro` resumes after epoch 5")
    # a process lost on another machine, said on the writer's machine and on a joining one
    remote = launch.Ending(0, 2, "Connection closed by peer", epoch=4, remote=True)
    assert launch.ending_line("train", remote, 3) == (
        "train: a process on another machine was lost during epoch 4 (Connection closed by peer); this machine's "
        "processes were stopped; `dvc repro` resumes after epoch 3")
    assert launch.ending_line("train", remote, None).endswith(
        "during epoch 4 (Connection closed by peer); this machine's processes were stopped; the first machine's "
        "`dvc repro` resumes the run")
    assert launch.ending_line("train", launch.Ending(1, -9, "", epoch=7), None).startswith(
        "train: rank 1 died (SIGKILL) during epoch 7;")  # the joiner's own killed process: the epoch it reached


def test_a_collective_error_is_told_from_a_processs_own():
    assert launch.collective_error(RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection "
                                                "closed by peer [127.0.0.1]:36576"))
    assert launch.collective_error(torch.distributed.DistBackendError("NCCL error"))
    assert not launch.collective_error(RuntimeError("data/prepared/meta.json: missing"))
    assert not launch.collective_error(ValueError("train.lr"))


def test_distributed_keys_are_refused_in_one_line():
    with pytest.raises(Exception, match="distributed.rendezvous: needed with several machines"):
        parse_config(tiny_params(**{"distributed.machines": 2}))
    with pytest.raises(Exception, match="distributed.rendezvous: must be host:port"):
        parse_config(tiny_params(**{"distributed.rendezvous": "somewhere"}))
    with pytest.raises(Exception, match="distributed.processes_per_machine"):
        parse_config(tiny_params(**{"distributed.processes_per_machine": 0}))
    with pytest.raises(Exception, match="distributed.sync_batchnorm: SyncBatchNorm runs on CUDA only"):
        parse_config(tiny_params(**{"distributed.sync_batchnorm": True}))  # (train.device: cpu)


def test_sync_batchnorm_on_a_device_that_turns_out_a_cpu_is_refused_in_one_line():
    """train.device auto on a machine without CUDA: refused as the workspace opens, not deep in a step."""
    from dividemix.cluster.group import join

    with pytest.raises(ValueError, match=r"^distributed.sync_batchnorm: SyncBatchNorm runs on CUDA only \(this "
                                         r"run's device is cpu\)"):
        join(torch.device("cpu"), expected=1, timeout_s=10, sync_batchnorm=True)


def test_one_process_launches_nothing_and_keeps_todays_path():
    assert not launch.needs_launch(parse_config(tiny_params()).distributed)
    assert launch.needs_launch(parse_config(tiny_params(**TWO)).distributed)
    args = launch.elastic_args(parse_config(tiny_params(**TWO)).distributed, "x", ["stages/train.py"])
    assert "--standalone" in args and "--nproc-per-node=2" in args and args[-1] == "stages/train.py"
    two = parse_config(tiny_params(**{"distributed.machines": 2, "distributed.rendezvous": "127.0.0.1:29400",
                                      "distributed.join_timeout_s": 90}))
    launched = announce.Announcement("train", "a1b2")  # each launch its own rendezvous id
    args = launch.elastic_args(two.distributed, launched.rendezvous_id(two.distributed.run_id), ["stages/train.py"])
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:29400", "--rdzv-id=dividemix-train-a1b2",
            "--local-addr=127.0.0.1", "--rdzv-conf=join_timeout=90"} <= set(args)
    assert announce.address(two.distributed) == ("127.0.0.1", 29401)
    away = parse_config(tiny_params(**{"distributed.machines": 2, "distributed.rendezvous": "10.1.2.3:29400",
                                       "distributed.local_addr": "10.1.2.4"}))
    assert "--local-addr=10.1.2.4" in launch.elastic_args(away.distributed, "i", ["s.py"])



