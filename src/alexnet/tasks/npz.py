"""An ``.npz`` (what ``np.load`` reads) written member by member, an array streamed in blocks.

``np.savez`` needs every array whole in memory; features of a large split are
(N, 9216) float32 (1.8 GB for ImageNet's 50,000 validation images at pool5, 47 GB
for its training set), so :meth:`NpzWriter.stream` writes the ``.npy`` header for
the final shape first and then each batch as it is computed. The zip is
uncompressed (as ``np.savez``), zip64, written to ``<name>.tmp-<pid>`` and renamed
into place when complete: a failed run leaves no partial file under the real name (and
deletes its temporary file; a killed run's is deleted by the next writer of that name).
"""

from __future__ import annotations

import contextlib
import glob
import os
import zipfile
from pathlib import Path

import numpy as np

from alexnet.lock import pid_alive

__all__ = ["NpzWriter", "remove_stale_temporaries"]


class _Stream:
    """One member being written: ``write`` blocks of rows, ``close`` checks the count."""

    def __init__(self, zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype) -> None:
        self.name, self.shape, self.dtype = name, tuple(shape), np.dtype(dtype)
        self.rows = 0
        self.file = zf.open(f"{name}.npy", "w", force_zip64=True)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows + len(block) > self.shape[0]:
            raise ValueError(
                f"{self.name}: a block of shape {block.shape} does not fit {self.shape} "
                f"after {self.rows} rows"
            )
        self.file.write(memoryview(block).cast("B"))
        self.rows += len(block)

    def close(self) -> None:
        self.file.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.name}: {self.rows} rows written, {self.shape[0]} declared")


class NpzWriter:
    """``with NpzWriter(path) as npz: npz.add("labels", a); s = npz.stream("x", (N, D), "f4")``;
    the file appears at ``path`` only when the ``with`` block ends without an error."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")

    def __enter__(self) -> NpzWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in __exit__
        self.zip = zipfile.ZipFile(self.file, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._stream: _Stream | None = None
        return self

    def add(self, name: str, array: np.ndarray) -> None:
        """A whole array as member ``name`` (no pickles: strings as unicode arrays)."""
        with self.zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)

    def stream(self, name: str, shape: tuple[int, ...], dtype) -> _Stream:
        """Member ``name`` of ``shape``, written block by block; close it before the next."""
        self._stream = _Stream(self.zip, name, shape, dtype)
        return self._stream

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            self.zip.close()  # the central directory
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        """Close what is open (a full disk fails each write again: ignored) and delete the
        temporary file."""
        with contextlib.suppress(Exception):
            if self._stream is not None:
                self._stream.file.close()
        with contextlib.suppress(Exception):
            self.zip.close()
        with contextlib.suppress(Exception):
            self.file.close()
        self.tmp.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete ``<name>.tmp-<pid>`` files beside ``path`` whose process is gone (a killed
    run's partial output); those of running processes are kept. Returns what was deleted."""
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed
