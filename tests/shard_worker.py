"""One rank of a sharded corpus encode (tests/test_shard.py), launched by torchrun.

argv: out_dir n_docs chunk_size die_rank die_at_call calls_log
The encoder is `ChunkSensitiveEncoder` (each chunk's vectors depend on the whole chunk, as batched
model encoding can): only the exact single-process chunking reproduces a single-process store.
Rank `die_rank` raises on its `die_at_call`-th encoder call (-1: nobody dies), like a crashed GPU.
Every encoder call is appended to `calls_log` as "rank n_texts".
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from retrieval_fakes import TopicEncoder  # noqa: E402


def docs_of(n: int):
    return lambda: ((f"doc-{i}", f"topic {i % 7} text {i}") for i in range(n))


class ChunkSensitiveEncoder(TopicEncoder):
    def __call__(self, texts):
        out = super().__call__(texts)
        salt = int(hashlib.sha1("|".join(texts).encode()).hexdigest()[:8], 16) / 2**32
        return (out + np.float32(1e-3 * salt)).astype(np.float32)


class Crash(RuntimeError):
    pass


def main(out: str, n: str, chunk: str, die_rank: str, die_at: str, log: str) -> None:
    from polyret import runtime
    from polyret.shard import encode_corpus_sharded

    runtime.stop_cleanly_on_sigterm()
    rank = runtime.rank()
    enc = ChunkSensitiveEncoder()
    calls = 0

    def encode(texts):
        nonlocal calls
        calls += 1
        if rank == int(die_rank) and calls == int(die_at):
            raise Crash(f"rank {rank} crashed on its encoder call {calls}")
        with open(log, "a") as f:
            f.write(f"{rank} {len(texts)}\n")
        return enc(texts)

    encode_corpus_sharded(
        docs_of(int(n)), Path(out), encode, identity="chunk-sensitive", chunk_size=int(chunk), show_progress=False
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
