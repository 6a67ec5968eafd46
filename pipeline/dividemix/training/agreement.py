"""The machines agree or refuse: every process runs the writer's parameters and code.

The data are checked where they are read (`workspace.same_data`); the parameters the stage reads
and the digest of every library file it executes are checked here, as the stage starts and before
any training. A machine with another `train.lr` would otherwise train silently with mixed
hyper-parameters (each process applies its own learning rate to the averaged gradient), and one
with another `train.batch_size` would wait forever inside a collective. The refusal is one line,
the same in every process, so that every machine's agent says it.
"""

from __future__ import annotations

import socket
from typing import Any

from dividemix.cluster.group import Cluster
from dividemix.run.code_deps import code_digest


def same_run(cluster: Cluster, params: dict[str, Any], module: str) -> None:
    """Refuse, in every process, when any process's `params` (dotted keys, the stage's) or the code
    of `module` differs from the writer's; nothing happens with one process."""
    if not cluster.spread:
        return
    mine = {**{key: repr(value) for key, value in params.items()},
            **{f"pipeline/{path}": digest for path, digest in code_digest(module).items()}}
    writers = cluster.object_from_writer(mine if cluster.is_writer else None)
    differ = sorted(key for key in mine.keys() | writers.keys() if mine.get(key) != writers.get(key))
    first = differ[0] if differ else None
    report = None if first is None else (first, mine.get(first, "absent"), writers.get(first, "absent"))
    reports = cluster.all_objects((socket.gethostname(), report))
    for rank, (host, found) in enumerate(reports):
        if found is not None:
            raise ValueError(disagreement(rank, host, cluster.writer, *found))


def disagreement(rank: int, host: str, writer: int, key: str, theirs: str, writers: str) -> str:
    """The one line: the key or file, the values, the process and machine, what to do."""
    if key.startswith("pipeline/"):
        return (f"distributed: {key} differs on rank {rank} ({host}) from the writer's (rank {writer}); every "
                "machine needs the same code")
    return (f"distributed: {key} is {theirs} on rank {rank} ({host}), {writers} on the writer (rank {writer}); "
            "every machine needs the same params.yaml")
