"""Sharded corpus encoding across torchrun processes (GPUs, nodes), merged into one store.

`encode_corpus_sharded(docs, out_dir, encode_fn, identity=..., chunk_size=...)` is
`polyret.stream.encode_corpus` for a job of W processes (W = torchrun's WORLD_SIZE; with one process
it *is* encode_corpus):

- the corpus is cut into the chunks a single process would encode (`chunk_size` documents each) and
  chunk c goes to rank c mod W. Every chunk is therefore encoded exactly as a single process would
  encode it (same texts, same batches), so the merged store equals a one-process encode bit for bit;
- each rank writes its chunks as an ordinary resumable store in `<out>/shards/of<W>/rank<r>/` (the
  `encode_corpus` format and marker protocol: fsync'ed rows, then an atomic progress marker), so a
  rank that dies loses at most its current chunk and a re-run resumes every shard where it stopped;
- when every shard is complete (a barrier), rank 0 interleaves them into `<out>` — `embeddings.npy`,
  `ids.jsonl`, `progress.json` exactly as `encode_corpus` writes them — and removes the shards.
  `search` and `eval beir/miracl` read that store like any other.

All ranks read the whole corpus (to count and fingerprint it, and to pick their chunks), so the
corpus and `<out>` must be on a file system every node sees (for several nodes: a shared one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from polyret import runtime
from polyret.errors import PolyretError
from polyret.integrity import DamagedFile
from polyret.stream import (
    EMBEDDINGS,
    IDS,
    PROGRESS,
    EmbeddingStore,
    EncodeFn,
    _create_npy,
    _read_marker,
    _scan_corpus,
    encode_corpus,
    is_store_file,
    seal_marker,
)

SHARDS = "shards"


def shard_dir(out_dir: Path, rank: int, world: int) -> Path:
    return Path(out_dir) / SHARDS / f"of{world}" / f"rank{rank}"


def chunks_of_rank(n: int, chunk_size: int, rank: int, world: int) -> list[int]:
    """Global chunk indices rank `rank` encodes: c = rank, rank + W, rank + 2W, ..."""
    return list(range(rank, -(-n // chunk_size), world))


def _shard_docs(docs: Callable[[], Iterable[tuple[str, str]]], chunk_size: int, rank: int, world: int):
    def mine():
        return (d for i, d in enumerate(docs()) if (i // chunk_size) % world == rank)

    return mine


def encode_corpus_sharded(
    docs: Callable[[], Iterable[tuple[str, str]]],
    out_dir: str | Path,
    encode_fn: EncodeFn,
    *,
    identity: str,
    chunk_size: int = 4096,
    overwrite: bool = False,
    show_progress: bool = True,
    description: str = "encoding corpus",
    rank: int | None = None,
    world: int | None = None,
) -> EmbeddingStore:
    """Encode `docs` into `out_dir` across the job's processes; every rank returns the merged store."""
    rank = runtime.rank() if rank is None else rank
    world = runtime.world_size() if world is None else world
    if world == 1:
        return encode_corpus(
            docs,
            Path(out_dir),
            encode_fn,
            identity=identity,
            chunk_size=chunk_size,
            overwrite=overwrite,
            show_progress=show_progress,
            description=description,
        )
    if chunk_size < 1:
        raise PolyretError(f"chunk size must be positive, got {chunk_size}")
    runtime.init_process_group_for_coordination()
    out = Path(out_dir)

    # 1. Is the merged store already there (a re-run after success)? Every rank checks the same files.
    n, fingerprint = _count_and_fingerprint(docs, identity, out, rank)
    if n == 0:
        raise PolyretError("the corpus holds no documents")
    marker = _read_marker(out) if out.is_dir() else None
    if marker and marker.get("complete") and marker.get("fingerprint") == fingerprint and marker.get("n") == n:
        return EmbeddingStore.open(out)
    _check_out_dir(out, marker, overwrite, fingerprint)
    runtime.barrier()  # nobody writes before every rank has accepted the directory

    # 2. This rank's chunks, resumable, in its own shard store.
    encode_shard(
        docs,
        out,
        encode_fn,
        identity=identity,
        chunk_size=chunk_size,
        rank=rank,
        world=world,
        n=n,
        overwrite=overwrite,
        show_progress=show_progress,
        description=description,
    )
    runtime.barrier()  # every shard complete

    # 3. Rank 0 interleaves the shards into the store a single process would have written.
    if rank == 0:
        merge_shards(docs, out, identity=identity, chunk_size=chunk_size, world=world)
    runtime.barrier()
    return EmbeddingStore.open(out)


def encode_shard(
    docs,
    out_dir: str | Path,
    encode_fn: EncodeFn,
    *,
    identity: str,
    chunk_size: int,
    rank: int,
    world: int,
    n: int | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
    description: str = "encoding corpus",
) -> EmbeddingStore | None:
    """Encode rank `rank`'s chunks into its resumable shard store (None if the rank has no chunk)."""
    out = Path(out_dir)
    if n is None:
        n = sum(1 for _ in docs())
    if not chunks_of_rank(n, chunk_size, rank, world):
        return None
    return encode_corpus(
        _shard_docs(docs, chunk_size, rank, world),
        shard_dir(out, rank, world),
        encode_fn,
        identity=f"{identity}|shard {rank} of {world}, chunks of {chunk_size}",
        chunk_size=chunk_size,
        overwrite=overwrite,
        show_progress=show_progress,
        description=f"{description} [rank {rank}/{world}]",
    )


def _count_and_fingerprint(docs, identity: str, out: Path, rank: int) -> tuple[int, str]:
    """(n, fingerprint) exactly as encode_corpus computes them (its ids file goes to a per-rank temp)."""
    tmp = out / f"{IDS}.rank{rank}.tmp"
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _scan_corpus(docs(), identity, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def _check_out_dir(out: Path, marker: dict | None, overwrite: bool, fingerprint: str) -> None:
    if out.exists() and not out.is_dir():
        raise PolyretError(f"{out} exists and is not a directory")
    if not out.is_dir():
        return
    foreign = [
        p
        for p in out.iterdir()
        if not is_store_file(p.name) and p.name != SHARDS and not p.name.startswith(IDS + ".rank")
    ]
    if marker is None and foreign and not overwrite:
        raise PolyretError(
            f"{out} is not empty and is not a polyret embedding directory; pass --overwrite to replace it"
        )
    if marker is not None and not overwrite and marker.get("fingerprint") == fingerprint:
        raise PolyretError(
            f"{out} holds an unfinished single-process encode of this corpus; finish it with one process "
            "(the same command without torchrun) or pass --overwrite to encode it sharded"
        )
    if marker is not None and not overwrite:
        raise PolyretError(
            f"{out} holds embeddings of a different corpus or encoder ({marker.get('identity')}); "
            "use another output directory or pass --overwrite"
        )


def merge_shards(docs, out_dir: str | Path, *, identity: str, chunk_size: int, world: int) -> EmbeddingStore:
    """Interleave the W complete shard stores into `out_dir`, exactly as one process would have written it."""
    out = Path(out_dir)
    ids_tmp = out / (IDS + ".tmp")
    n, fingerprint = _scan_corpus(docs(), identity, ids_tmp)  # ids.jsonl and fingerprint as encode_corpus makes them
    shards = [
        EmbeddingStore.open(shard_dir(out, r, world)) if chunks_of_rank(n, chunk_size, r, world) else None
        for r in range(world)
    ]
    dims = {s.dim for s in shards if s is not None}
    if len(dims) != 1:
        raise PolyretError(f"the shards in {out / SHARDS} disagree on the embedding width ({sorted(dims)})")
    dim = dims.pop()
    for r, shard in enumerate(shards):
        expected = sum(min(chunk_size, n - c * chunk_size) for c in chunks_of_rank(n, chunk_size, r, world))
        if shard is not None and shard.n != expected:
            raise PolyretError(
                f"shard {shard.dir} holds {shard.n} rows, the corpus gives it {expected}; "
                "the corpus changed since the shards were written: re-run with --overwrite"
            )
    for name in (EMBEDDINGS, PROGRESS, IDS):
        (out / name).unlink(missing_ok=True)
    offset = _create_npy(out / EMBEDDINGS, n, dim)
    fd = os.open(out / EMBEDDINGS, os.O_WRONLY)
    try:
        for c in range(-(-n // chunk_size)):
            rows = min(chunk_size, n - c * chunk_size)
            block = _read_rows(shards[c % world], (c // world) * chunk_size, rows)
            os.pwrite(fd, block.tobytes(), offset + c * chunk_size * dim * 4)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(ids_tmp, out / IDS)
    # The marker encode_corpus writes after its last chunk (same keys, same order, checksums): the merged
    # store is indistinguishable from a single-process one, and a later encode_corpus call reuses it.
    seal_marker(
        out, {"n": n, "dim": dim, "rows_done": n, "fingerprint": fingerprint, "identity": identity, "complete": True}
    )
    shutil.rmtree(out / SHARDS, ignore_errors=True)
    return EmbeddingStore.open(out)


def _read_rows(store: EmbeddingStore, start: int, rows: int) -> np.ndarray:
    with open(store.path, "rb") as f:
        f.seek(store.offset + start * store.dim * 4)
        block = np.fromfile(f, dtype="<f4", count=rows * store.dim)
    if block.size != rows * store.dim:
        raise DamagedFile(f"{store.path} is truncated at row {start}")
    return block


def describe_shards(out_dir: str | Path) -> dict:
    """Progress of every shard under `out_dir` (for messages and tests)."""
    root = Path(out_dir) / SHARDS
    info = {}
    if root.is_dir():
        for layout in sorted(root.iterdir()):
            for d in sorted(layout.iterdir()):
                m = _read_marker(d)
                info[f"{layout.name}/{d.name}"] = {"rows_done": m.get("rows_done"), "n": m.get("n")} if m else None
    return info


__all__ = [
    "encode_corpus_sharded",
    "encode_shard",
    "merge_shards",
    "chunks_of_rank",
    "shard_dir",
    "describe_shards",
    "SHARDS",
]
