"""Sharded corpus encoding: W ranks, one merged store equal to a single-process encode bit for bit.

- in one process, ranks simulated one after another (fast): chunk assignment, per-shard resume after a
  crash, merge identical to `encode_corpus` (with an encoder whose output depends on its whole chunk,
  so only the exact single-process chunking can reproduce it);
- torchrun, 2 CPU processes (gloo): a rank that crashes stops the job, a re-run resumes only the
  missing chunks, and the merged store equals the single-process one byte for byte;
- torchrun `polyret encode-corpus` with the tiny model: the real command, same bytes as one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyret.errors import PolyretError
from polyret.shard import SHARDS, chunks_of_rank, encode_shard, merge_shards, shard_dir
from polyret.stream import encode_corpus
from shard_worker import ChunkSensitiveEncoder, docs_of

TORCHRUN = Path(sys.executable).parent / "torchrun"
FILES = ("embeddings.npy", "ids.jsonl", "progress.json")


def _same_bytes(a: Path, b: Path) -> None:
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _single(tmp_path, n, chunk, identity="chunk-sensitive"):
    out = tmp_path / "single"
    encode_corpus(docs_of(n), out, ChunkSensitiveEncoder(), identity=identity, chunk_size=chunk, show_progress=False)
    return out


def test_chunks_are_dealt_round_robin():
    assert chunks_of_rank(10, 3, 0, 2) == [0, 2] and chunks_of_rank(10, 3, 1, 2) == [1, 3]
    assert chunks_of_rank(4, 3, 1, 3) == [1] and chunks_of_rank(4, 3, 2, 3) == []


def test_shards_resume_and_merge_into_the_single_process_store(tmp_path):
    n, chunk, world = 23, 4, 3
    out = tmp_path / "sharded"
    calls = []

    def crashing(texts):  # rank 2 dies on its second chunk
        calls.append(len(texts))
        if len(calls) == 2:
            raise RuntimeError("GPU fell off the bus")
        return ChunkSensitiveEncoder()(texts)

    with pytest.raises(RuntimeError, match="fell off"):
        encode_shard(docs_of(n), out, crashing, identity="chunk-sensitive", chunk_size=chunk, rank=2, world=world)
    assert json.loads((shard_dir(out, 2, world) / "progress.json").read_text())["rows_done"] == 4
    for rank in (0, 1):
        encode_shard(
            docs_of(n),
            out,
            ChunkSensitiveEncoder(),
            identity="chunk-sensitive",
            chunk_size=chunk,
            rank=rank,
            world=world,
        )
    resumed = ChunkSensitiveEncoder()
    encode_shard(docs_of(n), out, resumed, identity="chunk-sensitive", chunk_size=chunk, rank=2, world=world)
    assert resumed.calls == [3]  # only its missing chunk 5 (rows 20..22); chunk 2 was kept
    store = merge_shards(docs_of(n), out, identity="chunk-sensitive", chunk_size=chunk, world=world)
    assert store.n == n and not (out / SHARDS).exists()
    _same_bytes(out, _single(tmp_path, n, chunk))
    # A different chunking would not reproduce the single-process vectors (the check has teeth).
    other = tmp_path / "other"
    encode_corpus(
        docs_of(n), other, ChunkSensitiveEncoder(), identity="chunk-sensitive", chunk_size=5, show_progress=False
    )
    assert (other / "embeddings.npy").read_bytes() != (out / "embeddings.npy").read_bytes()


def test_merge_refuses_shards_of_another_corpus(tmp_path):
    out = tmp_path / "s"
    for rank in (0, 1):
        encode_shard(docs_of(10), out, ChunkSensitiveEncoder(), identity="x", chunk_size=3, rank=rank, world=2)
    with pytest.raises(PolyretError, match="the corpus changed since the shards were written"):
        merge_shards(docs_of(12), out, identity="x", chunk_size=3, world=2)


def _torchrun(args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_two_processes_a_rank_dies_the_rerun_resumes_and_matches_one_process(tmp_path):
    n, chunk = 40, 4  # 10 chunks: rank 0 gets 0,2,..,8, rank 1 gets 1,3,..,9
    out, log = tmp_path / "sharded", tmp_path / "calls.log"
    worker = Path(__file__).parent / "shard_worker.py"
    died = _torchrun([worker, out, n, chunk, 1, 3, log])
    assert died.returncode != 0 and "rank 1 crashed on its encoder call 3" in died.stderr
    assert not (out / "progress.json").exists()  # nothing merged
    rank1 = json.loads((shard_dir(out, 1, 2) / "progress.json").read_text())
    assert rank1["rows_done"] == 8 and not rank1["complete"]  # its two finished chunks are kept
    log.write_text("")
    again = _torchrun([worker, out, n, chunk, -1, -1, log])
    assert again.returncode == 0, again.stderr[-3000:]
    calls = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    rank1_calls = [c for c in calls if c[0] == 1]
    assert len(rank1_calls) == 3  # rank 1 resumed: chunks 5, 7, 9 only
    assert len([c for c in calls if c[0] == 0]) <= 5
    _same_bytes(out, _single(tmp_path, n, chunk))


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_encode_corpus_command_under_torchrun_equals_one_process(tiny_model, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny_model.save(str(model_dir))
    corpus = tmp_path / "corpus.jsonl"
    words = ["river", "Bücher", "検索", "مرحبا", "castle", "x"]
    with corpus.open("w") as f:
        for i in range(37):
            f.write(
                json.dumps({"_id": f"d{i}", "title": f"t{i % 3}", "text": " ".join(words[: 1 + i % 6]) + f" {i}"})
                + "\n"
            )
    common = [
        "--corpus",
        corpus,
        "--model",
        model_dir,
        "--chunk-size",
        5,
        "--batch-size",
        4,
        "--no-progress",
        "--device",
        "cpu",
    ]
    sharded = _torchrun(["-m", "polyret", "encode-corpus", "--out", tmp_path / "sharded", *common])
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "polyret", "encode-corpus", "--out", str(tmp_path / "single"), *map(str, common)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    _same_bytes(tmp_path / "sharded", tmp_path / "single")
    from polyret.search import search
    from polyret.stream import EmbeddingStore

    store = EmbeddingStore.open(tmp_path / "sharded")
    hits = search(store.memmap()[:3].copy(), store, 1)
    assert hits.indices[:, 0].tolist() == [0, 1, 2]  # each document finds itself first
