"""How the other machines follow what DVC runs on the first one: the first machine announces each
training stage it launches, and `dividemix join` joins exactly those, in the order they come.

DVC alone decides which stages run (a cached stage is skipped, `dvc exp run -S train.x=...` reruns
only `train`, a resume reruns the stage that failed), and it decides on the first machine; the
others have no DVC state to ask. So each launch there serves a small key-value store (torch's
TCPStore) at the rendezvous host, one port above the rendezvous, while the stage runs, holding the
stage's name and a fresh attempt id. Each launch's rendezvous id carries that attempt id: a joiner
can only ever reach the rendezvous of the launch now running, never the previous stage's store
before it closes (the race two consecutive stages on one endpoint would have). Nothing here
imports torch at import time: the command line uses it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dividemix.config import DistributedConfig

KEY = "dividemix/stage"
POLL_S = 1.0  # how often a waiting joiner looks for the next announcement


@dataclass(frozen=True)
class Announcement:
    """One launch of a training stage on the first machine: its name and the launch's own id."""

    stage: str
    attempt: str

    def rendezvous_id(self, run_id: str) -> str:
        return f"{run_id}-{self.stage}-{self.attempt}"


def address(spread: "DistributedConfig") -> tuple[str, int]:
    """Where the announcements are served: the rendezvous host, the port above the rendezvous'."""
    host, port = spread.rendezvous.rsplit(":", 1)
    return host.strip("[]"), int(port) + 1


@contextmanager
def announced(spread: "DistributedConfig", stage: str) -> Iterator[Announcement]:
    """The first machine's side: serve the announcement of `stage` while the launch runs (one
    machine: nothing to serve, nobody joins)."""
    announcement = Announcement(stage, uuid.uuid4().hex[:12])
    if spread.machines < 2 or spread.rendezvous is None:
        yield announcement
        return
    from torch.distributed import TCPStore

    host, port = address(spread)
    try:
        store = TCPStore(host, port, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=30))
    except Exception as exc:
        raise RuntimeError(f"cannot serve the stage announcements on port {port} (the rendezvous port + 1, "
                           f"distributed.rendezvous): {' '.join(str(exc).split())}") from None
    store.set(KEY, json.dumps({"stage": stage, "attempt": announcement.attempt}))
    try:
        yield announcement
    finally:
        del store  # closed: the joiners wait for the next launch's


def next_announcement(spread: "DistributedConfig", done: set[str], idle_s: float) -> Announcement | None:
    """The joiner's side: the next launch on the first machine whose attempt is not in `done` (a
    finished launch's store may still be up for a moment), or None after `idle_s` seconds with none."""
    host, port = address(spread)
    deadline = time.monotonic() + idle_s
    while time.monotonic() < deadline:
        found = _read(host, port)
        if found is not None and found.attempt not in done:
            return found
        time.sleep(POLL_S)
    return None


def _read(host: str, port: int) -> Announcement | None:
    """The announcement served at host:port now, None if nothing is served there."""
    import socket

    from torch.distributed import TCPStore

    try:  # a plain connection first: torch's client logs every refused attempt as an error
        socket.create_connection((host, port), timeout=POLL_S).close()
    except OSError:
        return None
    try:
        store = TCPStore(host, port, is_master=False, timeout=timedelta(seconds=POLL_S))
        if not store.check([KEY]):
            return None
        value = json.loads(store.get(KEY))
    except Exception:  # nobody serves yet (or any more): keep waiting
        return None
    return Announcement(value["stage"], value["attempt"])
