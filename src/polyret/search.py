"""Top-k inner-product search with FAISS over normalised embeddings, never forming the score matrix.

- `flat` (default): exact search. The corpus is scanned block by block from its on-disk store (or an
  in-memory array); each block goes into a FAISS `IndexFlatIP`, and its top-k per query are merged
  into a `faiss.ResultHeap`. Memory: one corpus block + (n_queries x k) results. FAISS itself tiles
  queries x block into small BLAS products, so no n_queries x n_docs matrix exists at any time.
- `hnsw` (`IndexHNSWFlat`) and `ivf` (`IndexIVFFlat`): approximate, for corpora where one exact scan
  per query batch is too slow. They hold all vectors in RAM (like any FAISS in-memory index). Their
  recall against exact search is measured on a sample of the queries and reported with the results.

Vectors are expected L2-normalised (the encoders in polyret return them so), making inner product
the cosine similarity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Union

import numpy as np

from polyret.errors import PolyretError
from polyret.stream import EmbeddingStore

INDEX_KINDS = ("flat", "hnsw", "ivf")
Corpus = Union[EmbeddingStore, np.ndarray]


@dataclass
class SearchOptions:
    """Knobs of the approximate indexes (ignored by `flat`)."""

    hnsw_m: int = 32  # graph degree
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128  # candidate list size at query time (recall vs speed)
    ivf_nlist: int | None = None  # number of clusters; None: 4 * sqrt(n), at most n / 39
    ivf_nprobe: int = 16  # clusters visited per query
    train_size: int = 100_000  # IVF training sample (rows)
    recall_sample: int = 1000  # queries on which approximate results are checked against exact
    corpus_block: int = 65_536  # rows per block read from disk
    seed: int = 0


@dataclass
class SearchResult:
    scores: np.ndarray  # (n_queries, k) float32, best first
    indices: np.ndarray  # (n_queries, k) int64 corpus rows; -1 where the corpus has fewer than k rows
    info: dict = field(default_factory=dict)  # index kind, parameters, timings, recall vs exact


def _as_f32(x: np.ndarray, what: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise PolyretError(f"{what} must be a 2-D array, got shape {x.shape}")
    return x


def _corpus_dim(corpus: Corpus) -> tuple[int, int]:
    if isinstance(corpus, EmbeddingStore):
        return corpus.n, corpus.dim
    return corpus.shape[0], corpus.shape[1]


def iter_corpus_blocks(corpus: Corpus, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 block) over an EmbeddingStore (file reads) or an array (views)."""
    if isinstance(corpus, EmbeddingStore):
        yield from corpus.iter_blocks(block_rows)
        return
    for start in range(0, corpus.shape[0], block_rows):
        yield start, np.ascontiguousarray(corpus[start : start + block_rows], dtype=np.float32)


def exact_search(
    queries: np.ndarray, corpus: Corpus, k: int, *, corpus_block: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: (scores, rows), each (n_queries, k), best first."""
    import faiss

    q = _as_f32(queries, "queries")
    n, dim = _corpus_dim(corpus)
    if q.shape[1] != dim:
        raise PolyretError(f"query vectors have dimension {q.shape[1]} but the corpus vectors {dim}")
    heap = faiss.ResultHeap(q.shape[0], k, keep_max=True)
    index = faiss.IndexFlatIP(dim)
    for start, block in iter_corpus_blocks(corpus, corpus_block):
        index.add(block)
        scores, rows = index.search(q, min(k, block.shape[0]))
        rows[rows >= 0] += start
        heap.add_result(scores, rows)
        index.reset()
    heap.finalize()
    return heap.D, heap.I


def _sample_rows(corpus: Corpus, size: int, seed: int) -> np.ndarray:
    n, _ = _corpus_dim(corpus)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(size, n), replace=False))
    if isinstance(corpus, EmbeddingStore):
        return corpus.rows(rows)
    return np.ascontiguousarray(corpus[rows], dtype=np.float32)


def build_index(corpus: Corpus, kind: str, options: SearchOptions | None = None):
    """An in-memory FAISS index (`hnsw` or `ivf`) over all corpus rows, filled block by block."""
    import faiss

    opts = options or SearchOptions()
    n, dim = _corpus_dim(corpus)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, opts.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = opts.hnsw_ef_construction
    elif kind == "ivf":
        nlist = opts.ivf_nlist or int(4 * np.sqrt(n))
        nlist = max(1, min(nlist, n // 39))  # FAISS wants >= 39 training points per centroid
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = opts.seed
        index.train(_sample_rows(corpus, max(opts.train_size, 39 * nlist), opts.seed))
    else:
        raise PolyretError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    for _, block in iter_corpus_blocks(corpus, opts.corpus_block):
        index.add(block)
    return index


def recall_vs_exact(approx_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / |exact top-k| (the usual ANN 'k-recall@k')."""
    total, hits = 0, 0
    for a, e in zip(approx_rows, exact_rows):
        e = e[e >= 0]
        total += len(e)
        hits += len(np.intersect1d(a[a >= 0], e, assume_unique=False))
    return hits / total if total else 1.0


def search(
    queries: np.ndarray, corpus: Corpus, k: int, *, index: str = "flat", options: SearchOptions | None = None
) -> SearchResult:
    """Top-k corpus rows per query with the chosen index; approximate kinds report recall vs exact."""

    if index not in INDEX_KINDS:
        raise PolyretError(f"unknown index kind {index!r}; choose one of {', '.join(INDEX_KINDS)}")
    if k < 1:
        raise PolyretError(f"k must be positive, got {k}")
    opts = options or SearchOptions()
    q = _as_f32(queries, "queries")
    n, dim = _corpus_dim(corpus)
    info: dict = {"kind": index, "k": k, "n_queries": int(q.shape[0]), "n_docs": int(n)}
    t0 = time.perf_counter()
    if index == "flat":
        scores, rows = exact_search(q, corpus, k, corpus_block=opts.corpus_block)
        info["search_seconds"] = time.perf_counter() - t0
        return SearchResult(scores, rows, info)

    faiss_index = build_index(corpus, index, opts)
    info["build_seconds"] = time.perf_counter() - t0
    if index == "hnsw":
        faiss_index.hnsw.efSearch = max(opts.hnsw_ef_search, k)
        info.update(m=opts.hnsw_m, ef_construction=opts.hnsw_ef_construction, ef_search=faiss_index.hnsw.efSearch)
    else:
        faiss_index.nprobe = min(opts.ivf_nprobe, faiss_index.nlist)
        info.update(nlist=int(faiss_index.nlist), nprobe=int(faiss_index.nprobe))
    t1 = time.perf_counter()
    scores, rows = faiss_index.search(q, k)
    info["search_seconds"] = time.perf_counter() - t1
    del faiss_index

    # Recall against exact search on a fixed random sample of queries (all of them when few).
    rng = np.random.default_rng(opts.seed)
    sample = np.sort(rng.choice(q.shape[0], size=min(opts.recall_sample, q.shape[0]), replace=False))
    _, exact_rows = exact_search(q[sample], corpus, k, corpus_block=opts.corpus_block)
    info[f"recall_vs_exact@{k}"] = recall_vs_exact(rows[sample], exact_rows)
    info["recall_sample_queries"] = int(len(sample))
    return SearchResult(scores, rows, info)
