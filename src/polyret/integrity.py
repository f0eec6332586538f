"""Integrity of what polyret writes and later reads back: checksums, shapes, dtypes, finite values.

Every file polyret reuses (a corpus store and its shards, the embedding cache, correction statistics)
gets a record when it is written: an xxh3-64 checksum of its bytes, and where it holds a matrix its
shape and dtype. Reuse verifies the record first. A file that no longer matches is either re-made
(with a warning saying so) or refused with `DamagedFile`, one line naming it; it never feeds a result.

Why xxh3: it hashes at memory speed (~10 GB/s on one core here), so verifying a store on reuse costs
a small fraction of the read that searching it needs anyway (measured: benchmarks/integrity.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xxhash
from rich.markup import escape

from polyret.errors import PolyretError
from polyret.runtime import console

_CHUNK = 1 << 22  # bytes hashed per read: large enough for full speed, small enough for memory


class DamagedFile(PolyretError):
    """A file polyret wrote earlier that no longer matches what was recorded when it was written."""


def verification_enabled() -> bool:
    """False only when POLYRET_VERIFY=0 (benchmarks/integrity.py measures the checks' cost with it)."""
    return os.environ.get("POLYRET_VERIFY", "1") != "0"


def checksum_file(path: str | Path, offset: int = 0) -> str:
    """xxh3-64 hex digest of the bytes of `path` from `offset` on."""
    h = xxhash.xxh3_64()
    with open(path, "rb") as f:
        f.seek(offset)
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def checksum_bytes(data: bytes | memoryview | np.ndarray) -> str:
    """xxh3-64 hex digest of a buffer (an array: its C-order bytes)."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).data
    return xxhash.xxh3_64_hexdigest(data)


def row_checksums(rows: np.ndarray) -> list[str]:
    """xxh3-64 hex digest of each row of a 2-D array (one buffer sliced: ~1 µs a row)."""
    rows = np.ascontiguousarray(rows)
    if len(rows) == 0:
        return []
    buf, step = memoryview(rows.reshape(len(rows), -1)).cast("B"), rows[0].nbytes
    digest = xxhash.xxh3_64_hexdigest
    return [digest(buf[i * step : (i + 1) * step]) for i in range(len(rows))]


def array_record(arr: np.ndarray) -> dict:
    """What is recorded for a matrix written to disk: shape, dtype, checksum."""
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "xxh3": checksum_bytes(arr)}


def check_array(arr: np.ndarray, record: dict, what: str) -> None:
    """Raise DamagedFile when `arr` does not match its `array_record`."""
    if list(arr.shape) != list(record.get("shape", arr.shape)) or str(arr.dtype) != record.get("dtype", str(arr.dtype)):
        raise DamagedFile(
            f"{what} has shape {tuple(arr.shape)} {arr.dtype}, but was written as "
            f"{tuple(record.get('shape', ()))} {record.get('dtype')}: the file was damaged or replaced"
        )
    if "xxh3" in record and checksum_bytes(arr) != record["xxh3"]:
        raise DamagedFile(f"{what} fails its checksum: it changed since polyret wrote it (damaged file)")


def non_finite_rows(arr: np.ndarray) -> np.ndarray:
    """Indices of rows holding NaN or ±inf."""
    arr = np.asarray(arr)
    bad = ~np.isfinite(arr)
    return np.flatnonzero(bad.reshape(len(arr), -1).any(1)) if arr.ndim > 1 else np.flatnonzero(bad)


def check_finite(arr: np.ndarray, what: str, *, first_row: int = 0, error=DamagedFile) -> None:
    """Raise `error` naming `what` and the first rows when `arr` holds NaN or ±inf."""
    rows = non_finite_rows(arr)
    if len(rows):
        shown = ", ".join(str(int(r) + first_row) for r in rows[:3])
        raise error(f"{what} holds non-finite values (NaN or inf) in {len(rows)} row(s), e.g. row {shown}")


def warn(message: str) -> None:
    """One warning line on stderr (damaged files that are re-made, stale locks recovered)."""
    console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)  # one line, greppable
