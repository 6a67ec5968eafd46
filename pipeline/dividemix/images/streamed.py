"""An image set read from its prepared store on disk, batch by batch: host memory stays bounded.

The store is a plain `.npy` file of (N, C, S, S) uint8 rows (`datasets.image_store`). Each batch's
rows are read with positional reads (`os.preadv`, several threads: the reads release the GIL)
straight into a host buffer (pinned on CUDA, one of two in turn so that a read overlaps the
previous batch's asynchronous copy), then copied to the device, where `ImageBatches` crops,
flips and normalises exactly as for `DeviceImages`.

Why reads and not a memory map: the pages of a mapped file count in the process's RSS as they
are touched, so an epoch over a 200 GB store would grow it without bound; pages read with
pread stay in the kernel's page cache, which the kernel reclaims at will. Host memory is the
buffers: 2 x (largest batch) x C x S x S bytes, whatever N is.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from dividemix.datasets.spec import DatasetSpec
from dividemix.images.batches import ImageBatches

READ_THREADS = 4  # positional reads in flight per batch (SSD and page-cache reads scale with a few)


class StoreError(OSError):
    """The store on disk is shorter than its header says (a truncated or replaced file)."""


class StreamedImages(ImageBatches):
    """`DeviceImages`' interface over a store on disk (rows read per batch)."""

    def __init__(self, path: Path, spec: DatasetSpec, device: torch.device, *, channels_last: bool = False,
                 corners: np.ndarray | None = None):
        super().__init__(spec, device, channels_last=channels_last, corners=corners)
        self.path = Path(path)
        header = np.load(self.path, mmap_mode="r")  # the header only: shape and data offset
        self.shape, self._offset = header.shape, header.offset
        del header
        self._row_bytes = int(np.prod(self.shape[1:]))
        self._fd = os.open(self.path, os.O_RDONLY)
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="store-read")
        self._pinned: list[torch.Tensor | None] = [None, None]
        self._copied: list[torch.cuda.Event | None] = [None, None]
        self._turn = 0
        self.bytes_read = 0  # every row read so far, in bytes (benchmarks/bench_distributed.py)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def channels(self) -> int:
        return self.shape[1]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to release
            pass

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """The rows `index` (a CPU tensor: the rows to read are known on the host, no device sync)."""
        wanted = index.numpy()
        host = self._host_buffer(len(wanted))
        self._read_into(host.numpy(), wanted)
        if self.device.type != "cuda":
            return host
        batch = host.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._copied[self._turn] = event
        self._turn = 1 - self._turn
        return batch

    def _host_buffer(self, n: int) -> torch.Tensor:
        """Where the rows land: a fresh tensor on the CPU device; on CUDA the next pinned buffer,
        once its previous copy to the device has finished."""
        shape = (n, *self.shape[1:])
        if self.device.type != "cuda":
            return torch.empty(shape, dtype=torch.uint8)
        turn = self._turn
        if self._copied[turn] is not None:
            self._copied[turn].synchronize()
        pinned = self._pinned[turn]
        if pinned is None or pinned.shape[0] < n:
            pinned = self._pinned[turn] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return pinned[:n]

    def _read_into(self, out: np.ndarray, wanted: np.ndarray) -> None:
        flat = out.reshape(len(wanted), self._row_bytes)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"{self.path}: row index out of range [0, {len(self)})")
        chunks = np.array_split(np.arange(len(wanted)), min(READ_THREADS, max(1, len(wanted))))
        list(self._pool.map(lambda slots: self._read_rows(flat, wanted, slots), chunks))
        self.bytes_read += len(wanted) * self._row_bytes

    def _read_rows(self, flat: np.ndarray, wanted: np.ndarray, slots: np.ndarray) -> None:
        for slot in slots:
            position = self._offset + int(wanted[slot]) * self._row_bytes
            if os.preadv(self._fd, [memoryview(flat[slot])], position) != self._row_bytes:
                raise StoreError(f"{self.path}: row {int(wanted[slot])} is cut short; rerun download (dvc repro -f download)")
