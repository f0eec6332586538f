"""Streaming, resumable corpus encoding into an on-disk `.npy` matrix.

A directory written by `encode_corpus` holds

- `embeddings.npy`: a regular `(n, dim)` float32 `.npy` file (`np.load(..., mmap_mode="r")` opens it),
- `ids.jsonl`: the document id of each row, one JSON string per line,
- `progress.json`: the progress marker `{n, dim, rows_done, fingerprint, complete}`.

Only one chunk of texts and its embeddings is in memory at a time. Rows are written with positioned
writes (`os.pwrite`) rather than through a writable memory map on purpose: pages dirtied through a
mapping count in the process's resident set until the kernel writes them back, so a mapped
100M-row write would show RSS growing with the corpus even though nothing is leaked; plain writes
go to the page cache, which is not ours. Readers likewise read blocks with `np.fromfile`.

After each chunk the data are flushed and fsync'ed *before* the marker is atomically replaced, so
after an interruption (Ctrl-C, killed job, lost machine) a rerun with the same corpus and encoder
continues at `rows_done`; a different corpus or encoder (different fingerprint) is refused
rather than silently mixed.

Integrity (polyret.integrity): the finished marker records an xxh3 checksum of `embeddings.npy` and
`ids.jsonl`; `EmbeddingStore.open` verifies both, and the file size, before a store is used, so a
store damaged after it was written (rows overwritten with NaN, a truncated file) is refused with one
line, or re-encoded with a warning when `encode_corpus` meets it on a re-run. Rows are checked for
non-finite values as they are produced, and (in a store from before checksums) on reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyret.errors import PolyretError
from polyret.integrity import DamagedFile, check_finite, checksum_file, verification_enabled, warn
from polyret.io import is_atomic_temp, mark_finished
from polyret.locking import locked
from polyret.progress import counting

EMBEDDINGS = "embeddings.npy"
IDS = "ids.jsonl"
PROGRESS = "progress.json"

EncodeFn = Callable[[list[str]], np.ndarray]
"""texts -> float32 array (len(texts), dim); rows in the same order as the texts."""


@dataclass
class EmbeddingStore:
    """A finished (or partially finished) `encode_corpus` directory."""

    dir: Path
    n: int
    dim: int
    offset: int  # byte offset of row 0 in embeddings.npy (after the .npy header)
    filename: str = EMBEDDINGS

    @property
    def path(self) -> Path:
        return self.dir / self.filename

    @classmethod
    def from_npy(cls, path: Path) -> "EmbeddingStore":
        """Any 2-D float32 .npy as a store of vectors (no ids): for searching precomputed embeddings."""
        path = Path(path)
        with open(path, "rb") as f:
            shape, offset = _read_npy_header(f, path)
        if len(shape) != 2:
            raise PolyretError(f"{path} is not a 2-D matrix (shape {shape})")
        return cls(path.parent, shape[0], shape[1], offset, path.name)

    @classmethod
    def open(cls, directory: Path, *, verify: bool = True) -> "EmbeddingStore":
        """A finished store; `verify` checks it against what was recorded when it was written
        (size, checksums; non-finite rows in a store without checksums) and raises DamagedFile."""
        directory = Path(directory)
        marker = _read_marker(directory)
        if marker is None or not marker.get("complete"):
            raise PolyretError(f"{directory} holds no complete polyret embedding store (no finished {PROGRESS})")
        path = directory / EMBEDDINGS
        if not path.is_file():
            raise DamagedFile(f"{path} is missing, though {directory / PROGRESS} says the store is finished")
        with open(path, "rb") as f:
            shape, offset = _read_npy_header(f, path)
        if shape != (marker["n"], marker["dim"]):
            raise DamagedFile(f"{path} has shape {shape}, its {PROGRESS} says {(marker['n'], marker['dim'])}")
        store = cls(directory, marker["n"], marker["dim"], offset)
        if path.stat().st_size != offset + store.n * store.dim * 4:
            raise DamagedFile(
                f"{path} is {path.stat().st_size} bytes, a {store.n} x {store.dim} float32 matrix "
                f"needs {offset + store.n * store.dim * 4}: the file is truncated or damaged"
            )
        if verify and verification_enabled():
            store.verify(marker)
        return store

    def verify(self, marker: dict | None = None) -> None:
        """Raise DamagedFile unless every file matches the checksum its finished marker recorded;
        a store written before checksums existed is scanned for non-finite rows instead."""
        marker = _read_marker(self.dir) if marker is None else marker
        sums = (marker or {}).get("checksums")
        if not sums:
            for start, block in self.iter_blocks(65536):
                check_finite(block, str(self.path), first_row=start)
            return
        for name, digest in sums.items():
            if checksum_file(self.dir / name) != digest:
                raise DamagedFile(
                    f"{self.dir / name} fails its checksum: it changed since polyret wrote it "
                    f"(damaged file); delete {self.dir} or re-run with --overwrite"
                )

    def memmap(self) -> np.ndarray:
        """Read-only memory map of all rows (convenient; touching all of it makes its pages resident)."""
        return np.load(self.path, mmap_mode="r")

    def iter_blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 block) pairs read with plain file reads: RSS stays at one block."""
        row_bytes = self.dim * 4
        with open(self.path, "rb") as f:
            for start in range(0, self.n, block_rows):
                rows = min(block_rows, self.n - start)
                f.seek(self.offset + start * row_bytes)
                block = np.fromfile(f, dtype="<f4", count=rows * self.dim)
                if block.size != rows * self.dim:
                    raise DamagedFile(f"{self.path} is truncated at row {start}")
                yield start, block.reshape(rows, self.dim)

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows at `indices` (any order), read one by one: for a few thousand rows, not for all."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), self.dim), dtype=np.float32)
        row_bytes = self.dim * 4
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for j in np.argsort(idx, kind="stable"):  # sorted reads are kinder to the disk
                buf = os.pread(fd, row_bytes, self.offset + int(idx[j]) * row_bytes)
                out[j] = np.frombuffer(buf, dtype="<f4")
        finally:
            os.close(fd)
        return out

    def iter_ids(self) -> Iterator[str]:
        with open(self.dir / IDS, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def ids(self) -> list[str]:
        """All ids in row order (fine for small corpora; large ones should use `lookup_ids`)."""
        return list(self.iter_ids())

    def lookup_ids(self, indices: Iterable[int]) -> dict[int, str]:
        """{row: id} for the requested rows, in one pass over ids.jsonl (memory ~ len(indices))."""
        wanted = {int(i) for i in indices if int(i) >= 0}
        out: dict[int, str] = {}
        for row, doc_id in enumerate(self.iter_ids()):
            if row in wanted:
                out[row] = doc_id
        return out

    def index_of(self, doc_ids: Iterable[str]) -> dict[str, int]:
        """{id: row} for the requested ids that exist (one pass over ids.jsonl)."""
        wanted = set(doc_ids)
        out: dict[str, int] = {}
        for row, doc_id in enumerate(self.iter_ids()):
            if doc_id in wanted:
                out[doc_id] = row
        return out


def _read_npy_header(f, path: Path) -> tuple[tuple[int, ...], int]:
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not our file"
        raise PolyretError(f"{path} is not a valid .npy file ({e})") from None
    if dtype != np.dtype("<f4") or fortran:
        raise PolyretError(f"{path} is not a C-order float32 matrix")
    return tuple(shape), f.tell()


def store_is_complete(directory: Path) -> bool:
    """True when `directory` holds a finished embedding store (its progress marker says so)."""
    return bool((_read_marker(Path(directory)) or {}).get("complete"))


def _read_marker(directory: Path) -> dict | None:
    p = Path(directory) / PROGRESS
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise PolyretError(f"{p} is corrupt (not JSON); delete the directory or pass --overwrite") from None


def is_store_file(name: str) -> bool:
    """A file an interrupted `encode_corpus` may leave before its first progress marker exists: the
    store's own files, the ids being written, and the temp file of a progress marker cut short by SIGKILL."""
    return name in (EMBEDDINGS, IDS, PROGRESS, IDS + ".tmp", PROGRESS + ".tmp") or is_atomic_temp(name, PROGRESS)


def _write_marker(directory: Path, marker: dict) -> None:
    """The store's progress marker through polyret.io's marker helper (atomic: a reader sees the old or the
    new marker, never half); `complete` turns true with the last row."""
    fields = {k: v for k, v in marker.items() if k != "complete"}
    mark_finished(directory / PROGRESS, fields, complete=bool(marker.get("complete")))


def seal_marker(directory: Path, marker: dict) -> None:
    """Write the finished marker with the checksums that `EmbeddingStore.open` verifies on reuse."""
    sums = {name: checksum_file(directory / name) for name in (EMBEDDINGS, IDS)}
    _write_marker(directory, {**marker, "complete": True, "checksums": sums})


def _reusable(out: Path) -> EmbeddingStore | None:
    """The finished store in `out`, or None (with a warning) when it is damaged and must be re-made.
    A store from before checksums that passes the non-finite scan is sealed with checksums now."""
    try:
        store = EmbeddingStore.open(out)
    except DamagedFile as e:
        warn(f"{e}; re-encoding the corpus store {out}")
        return None
    marker = _read_marker(out) or {}
    if "checksums" not in marker and verification_enabled():
        seal_marker(out, marker)
    return store


def _scan_corpus(docs: Iterable[tuple[str, str]], identity: str, ids_tmp: Path) -> tuple[int, str]:
    """Pass 1: count documents, write their ids, fingerprint (identity, ids, texts)."""
    h = hashlib.sha256(identity.encode("utf-8") + b"\0")
    n = 0
    with open(ids_tmp, "w", encoding="utf-8") as f:
        for doc_id, text in docs:
            h.update(doc_id.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\n")
            f.write(json.dumps(doc_id, ensure_ascii=False) + "\n")
            n += 1
    return n, h.hexdigest()


def encode_corpus(
    docs: Callable[[], Iterable[tuple[str, str]]],
    out_dir: Path,
    encode_fn: EncodeFn,
    *,
    identity: str,
    chunk_size: int = 4096,
    overwrite: bool = False,
    show_progress: bool = True,
    description: str = "encoding corpus",
) -> EmbeddingStore:
    """Encode a corpus chunk by chunk into `out_dir`, resuming an interrupted run of the same job.

    `docs` is called (at most) twice and must yield the same `(doc_id, text)` pairs each time: once to
    count and fingerprint the corpus, once to encode it. `identity` names the encoder configuration
    (model id, prompt kind, max length): it is part of the fingerprint, so a rerun with another model
    is refused instead of appending its vectors to the old ones.

    Two processes never write one store: `out_dir` is locked (polyret.locking) while it is written.
    """
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise PolyretError(f"{out_dir} exists and is not a directory")
    with locked(Path(out_dir), "corpus store"):
        if chunk_size < 1:
            raise PolyretError(f"chunk size must be positive, got {chunk_size}")
        out = Path(out_dir)
        marker = _open_store_dir(out, overwrite)
        ids_tmp = out / (IDS + ".tmp")
        n, fingerprint = _scan_corpus(docs(), identity, ids_tmp)
        if n == 0:
            ids_tmp.unlink()
            raise PolyretError("the corpus holds no documents")
        same_job = marker is not None and marker.get("fingerprint") == fingerprint and marker.get("n") == n
        if same_job and marker.get("complete"):
            store = _reusable(out)
            if store is not None:
                ids_tmp.unlink()
                return store
        start = _resume_point(out, marker, n) if same_job and not marker.get("complete") else None
        if start is not None:
            ids_tmp.unlink()
        else:
            if marker is not None and not overwrite and not same_job:
                raise PolyretError(
                    f"{out} holds embeddings of a different corpus or encoder ({marker.get('identity')}); "
                    "use another output directory or pass --overwrite"
                )
            for name in (EMBEDDINGS, PROGRESS, IDS):
                (out / name).unlink(missing_ok=True)
            os.replace(ids_tmp, out / IDS)
            marker = {
                "n": n,
                "dim": None,
                "rows_done": 0,
                "fingerprint": fingerprint,
                "identity": identity,
                "complete": False,
            }
            start = (0, None)
        with counting(n, description, show=show_progress) as advance:
            advance(start[0])
            _encode_rows(docs(), out, encode_fn, marker, start, chunk_size, advance)
        return EmbeddingStore.open(out, verify=False)  # just written and checksummed


def _open_store_dir(out: Path, overwrite: bool) -> dict | None:
    """Create `out` (or accept our own store there); returns its progress marker, if any."""
    if out.exists() and not out.is_dir():
        raise PolyretError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    marker = _read_marker(out)
    if marker is None and not all(is_store_file(p.name) for p in out.iterdir()) and not overwrite:
        raise PolyretError(
            f"{out} is not empty and is not a polyret embedding directory; pass --overwrite to replace it"
        )
    return marker


def _resume_point(out: Path, marker: dict, n: int) -> tuple[int, int] | None:
    """(rows already on disk, byte offset of row 0) of an interrupted store of this corpus, or None (with
    a warning) when the rows written so far are damaged (wrong shape, non-finite values): start again."""
    rows_done, dim = int(marker["rows_done"]), int(marker["dim"])
    try:
        with open(out / EMBEDDINGS, "rb") as f:
            shape, offset = _read_npy_header(f, out / EMBEDDINGS)
        if shape != (n, dim):
            raise DamagedFile(f"{out / EMBEDDINGS} has shape {shape}, its {PROGRESS} says {(n, dim)}")
        if verification_enabled():
            for start, block in EmbeddingStore(out, rows_done, dim, offset).iter_blocks(65536):
                check_finite(block, str(out / EMBEDDINGS), first_row=start)
    except (DamagedFile, OSError) as e:
        warn(f"{e}; the interrupted encode in {out} starts again")
        return None
    return rows_done, offset


def _encode_rows(
    docs: Iterable[tuple[str, str]],
    out: Path,
    encode_fn: EncodeFn,
    marker: dict,
    start_at: tuple[int, int | None],
    chunk_size: int,
    advance: Callable[[int], None],
) -> None:
    """Encode the rows from `start_at` = (row, data offset or None for a new file) on, chunk by chunk;
    after each chunk the data are fsync'ed, then the marker is replaced (so a rerun resumes there)."""
    n, dim = marker["n"], marker["dim"]
    start, offset = start_at
    rows_done = start
    fd = None
    chunk: list[str] = []
    try:
        for row, (_doc_id, text) in enumerate(docs):
            if row < rows_done:  # already on disk
                continue
            chunk.append(text)
            if len(chunk) < chunk_size and row + 1 != n:
                continue
            emb = _check_chunk(encode_fn(chunk), len(chunk), dim, start)
            if dim is None:  # first chunk of a fresh run fixes the width and creates the file
                dim = emb.shape[1]
                offset = _create_npy(out / EMBEDDINGS, n, dim)
            if fd is None:
                fd = os.open(out / EMBEDDINGS, os.O_WRONLY)
            os.pwrite(fd, np.ascontiguousarray(emb, dtype="<f4").tobytes(), offset + start * dim * 4)
            os.fsync(fd)
            start += len(chunk)
            if start == n:
                seal_marker(out, {**marker, "dim": dim, "rows_done": start})
            else:
                _write_marker(out, {**marker, "dim": dim, "rows_done": start, "complete": False})
            advance(len(chunk))
            chunk = []
    finally:
        if fd is not None:
            os.close(fd)
    if start != n:
        raise PolyretError(f"the corpus yielded {start} documents on the second pass but {n} on the first")


def _create_npy(path: Path, n: int, dim: int) -> int:
    """Write a .npy header for an (n, dim) float32 matrix and size the file; returns the data offset."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
        offset = f.tell()
        f.truncate(offset + n * dim * 4)  # sparse until written
    return offset


def _check_chunk(emb, rows: int, dim: int | None, start: int) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != rows or (dim is not None and emb.shape[1] != dim):
        raise PolyretError(
            f"the encoder returned shape {emb.shape} for {rows} texts starting at row {start}"
            + (f" (expected width {dim})" if dim else "")
        )
    if not np.isfinite(emb).all():
        raise PolyretError(f"the encoder returned non-finite values for the chunk starting at row {start}")
    return emb
