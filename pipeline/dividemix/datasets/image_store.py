"""The prepared image store: a plain `.npy` file of (N, 3, S, S) uint8 rows, written in parallel.

Why `.npy`: numpy's own format, a fixed header then the rows in order, so a row is found by
arithmetic and read with one positional read (`images.streamed`), and any user can open the
store with `np.load(path, mmap_mode="r")`; no extra library, nothing to index. (A sharded format
such as WebDataset streams sequentially but cannot serve the random batches and the per-sample
eval passes DivideMix needs; HDF5/zarr add chunking we do not need for fixed-size rows.)

`write_store` decodes the images in worker processes (all cores by default); each worker
writes its rows straight into the file with `os.pwrite` (no row passes through the parent, and
nothing is memory-mapped, so no process's RSS grows with N) and returns, per row, the channel
sums (exact integers) and the row's SHA-256. The parent keeps only those few numbers per image:
the channel statistics are exact and the content digest does not depend on the order in which
workers finish.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dividemix.datasets.image_decode import ImageDecodeError, decode_row
from dividemix.datasets.spec import DataSourceError

CHUNK = 64  # images per task: small enough for a smooth progress line and a prompt stop


@dataclass
class StoreSummary:
    """What writing a store measured: exact channel sums, the content digest, the unusual modes."""

    n: int
    side: int
    sums: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=object))  # Python ints: exact
    squares: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=object))
    sha256: str = ""
    notes: dict[str, list[str]] = field(default_factory=dict)  # note -> ["list:line path", ...]
    # per row, the (top, left) corner of the reference's evaluation crop in the stored square
    corners: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int16))

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std as fractions of 255 (a floor of one grey level on the std)."""
        count = self.n * self.side * self.side
        mean = np.array([float(s) / count for s in self.sums]) / 255.0
        square = np.array([float(q) / count for q in self.squares]) / 255.0**2
        std = np.maximum(np.sqrt(np.maximum(square - mean**2, 0.0)), 1 / 255)
        return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def create_store(path: Path, n: int, side: int) -> int:
    """An (n, 3, side, side) uint8 `.npy` file of zeros (sparse); returns the rows' byte offset."""
    with open(path, "wb") as handle:
        header = {"descr": "|u1", "fortran_order": False, "shape": (n, 3, side, side)}
        np.lib.format.write_array_header_1_0(handle, header)
        offset = handle.tell()
        handle.truncate(offset + n * 3 * side * side)  # sparse until the workers write the rows
    return offset


# --- the worker side ---------------------------------------------------------------------------
# What the workers read, set by the parent just before it forks them: every worker inherits it
# (copy-on-write), so a task is only a row range and nothing per image is pickled or duplicated.
_job: dict = {}
_files: dict[str, int] = {}


def _worker_start() -> None:
    # The parent decides about interrupts (one line, a clean stop); a worker must not print a
    # KeyboardInterrupt of its own, and dies with its parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _decode_rows(start: int, stop: int):
    """Decode rows start..stop-1 of the job into its store; per row: sums, squares, digest, note."""
    store, offset, side, crop, root, items = (_job[key] for key in ("store", "offset", "side", "crop", "root", "items"))
    fd = _files.get(store)
    if fd is None:
        fd = _files[store] = os.open(store, os.O_WRONLY)
    row_bytes = 3 * side * side
    out = []
    for row in range(start, stop):
        path, where = items[row]
        try:
            pixels, note, corner = decode_row(os.path.join(root, path), side, crop)  # not pathlib: it interns names
        except ImageDecodeError as exc:
            raise DataSourceError(f"{where}: cannot read image {os.path.join(root, path)} ({exc})") from None
        data = pixels.tobytes()
        os.pwrite(fd, data, offset + row * row_bytes)
        wide = pixels.reshape(3, -1).astype(np.int64)
        out.append((row, wide.sum(1).tolist(), np.einsum("ij,ij->i", wide, wide).tolist(),
                    hashlib.sha256(data).digest(), note, f"{where} {path}" if note else None, corner))
    return out


# --- the parent side ---------------------------------------------------------------------------
def write_store(path: Path, root: Path, items, side: int, *, workers: int, crop: int | None = None,
                progress=None) -> StoreSummary:
    """Decode `items` (a sequence of (path, "list:line") in row order) into a new store at `path`;
    `crop` is the evaluation crop whose corner each row records (the summary's `corners`).

    `progress(done, total)` is called as chunks finish. At most 4 chunks per worker are in flight,
    so the parent's memory is the item list, 32 bytes of digest per image and a few chunks' results.
    A bad image stops every worker and raises its one-line DataSourceError; the caller removes the
    unfinished file (it is written in the download stage's temporary folder).
    """
    offset = create_store(path, len(items), side)
    summary = StoreSummary(len(items), side, corners=np.zeros((len(items), 2), dtype=np.int16))
    if not len(items):
        summary.sha256 = hashlib.sha256(b"").hexdigest()
        return summary
    digests = bytearray(32 * len(items))
    chunks = iter(range(0, len(items), CHUNK))
    _job.update(store=str(path), offset=offset, side=side, crop=crop, root=str(root), items=items)
    workers = max(1, min(workers, -(-len(items) // CHUNK)))
    context = multiprocessing.get_context("fork")  # workers inherit the imports and the job: start in ms
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start) as pool:
            pending, done = set(), 0

            def submit(count: int) -> None:
                for start in itertools.islice(chunks, count):
                    pending.add(pool.submit(_decode_rows, start, min(start + CHUNK, len(items))))

            submit(4 * workers)
            try:
                while pending:
                    finished, _ = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
                    pending.difference_update(finished)
                    for future in finished:
                        done += _merge(summary, digests, future.result())
                    submit(len(finished))
                    if progress is not None and finished:
                        progress(done, len(items))
            finally:
                for future in pending:
                    future.cancel()
    finally:
        _job.clear()
    summary.sha256 = hashlib.sha256(bytes(digests)).hexdigest()
    return summary


def _merge(summary: StoreSummary, digests: list, rows: list) -> int:
    for row, sums, squares, digest, note, where, corner in rows:
        summary.sums += np.array(sums, dtype=object)
        summary.squares += np.array(squares, dtype=object)
        summary.corners[row] = corner
        digests[32 * row : 32 * row + 32] = digest
        if note is not None:
            summary.notes.setdefault(note, []).append(where)
    return len(rows)


class RateLine:
    """The download's progress: a tqdm bar in a terminal, else a line every 10 s, with images/s."""

    def __init__(self, label: str, total: int, stream=None):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"[download] {label}", unit="img", file=self.stream)
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        now = time.perf_counter()
        if self.bar is None and (now - self.last >= 10 or done == total):
            rate = done / max(now - self.start, 1e-9)
            print(f"[download] {self.label}: {done}/{total} images ({rate:.0f} images/s)", file=self.stream, flush=True)
            self.last = now
        self.done = done

    def close(self) -> float:
        """Closes the bar; returns the images per second over the whole store."""
        if self.bar is not None:
            self.bar.close()
        return self.total / max(time.perf_counter() - self.start, 1e-9)
