"""A deterministic stand-in encoder for retrieval tests: texts "topic T ..." map near topic T's centre.

Vectors depend only on the text (hash-seeded noise), so encoding in any chunking gives identical
rows, and retrieval quality is real but imperfect (noise), which makes metrics non-trivial.
"""

from __future__ import annotations

import hashlib

import numpy as np

from polyret.data.beir import BeirDoc, BeirQuery
from polyret.evaluate.retrieval import Encoders

DIM = 24


class TopicEncoder:
    def __init__(self, n_topics: int = 40, noise: float = 0.9, seed: int = 0):
        self.centres = np.random.default_rng(seed).normal(size=(n_topics, DIM))
        self.noise = noise
        self.calls: list[int] = []  # batch sizes seen

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.empty((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            topic = int(t.split()[1]) % len(self.centres)
            seed = int(hashlib.sha1(t.encode("utf-8")).hexdigest()[:12], 16)
            v = self.centres[topic] + self.noise * np.random.default_rng(seed).normal(size=DIM)
            out[i] = v / np.linalg.norm(v)
        return out

    def encoders(self) -> Encoders:
        return Encoders(self, self, f"topic-encoder-{len(self.centres)}-{self.noise}", "topic-encoder")


def synthetic_beir(n_docs: int = 600, n_queries: int = 60, n_topics: int = 40, rel_per_query: int = 4):
    """(docs, queries, qrels): each query judges `rel_per_query` docs of its topic relevant (graded 1-2)
    and one doc of its topic not relevant (0)."""
    docs = [
        BeirDoc(f"d{i:04d}", f"topic {i % n_topics} passage number {i}", title="", lang=("en", "de")[i % 2])
        for i in range(n_docs)
    ]
    queries = [
        BeirQuery(f"q{j}", f"topic {j % n_topics} question {j}", lang=("en", "de", "sw")[j % 3])
        for j in range(n_queries)
    ]
    qrels = {}
    for j in range(n_queries):
        same = [f"d{i:04d}" for i in range(j % n_topics, n_docs, n_topics)]
        qrels[f"q{j}"] = {d: 1 + (r % 2) for r, d in enumerate(same[:rel_per_query])}
        qrels[f"q{j}"][same[rel_per_query]] = 0
    return docs, queries, qrels
