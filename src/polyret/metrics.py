"""Small pure retrieval metrics, vectorised over queries.

Most functions take `ranks`: an array (..., m) holding, per query, the 1-based ranks of its relevant
items within the ranked candidate list, padded with `np.inf` where a query has fewer than m
relevant items. Ranks of one query must be distinct (the ranking breaks ties). A query with no
relevant item (all padding) yields NaN, which the averaging helpers skip.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def pad_ranks(rows: Sequence[Sequence[float]], width: int | None = None) -> np.ndarray:
    """Ragged per-query rank lists -> (n, width) float array padded with inf."""
    width = max((len(r) for r in rows), default=0) if width is None else width
    out = np.full((len(rows), width), np.inf)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def n_relevant(ranks: np.ndarray) -> np.ndarray:
    """Number of relevant items per query (non-padding entries)."""
    return np.isfinite(ranks).sum(axis=-1)


def _per_query(numerator: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    n = n_relevant(ranks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, numerator / np.maximum(n, 1), np.nan)


def average_precision(ranks: np.ndarray) -> np.ndarray:
    """LAReQA average precision over the full ranking (no cut-off).

    AP = mean over the query's relevant items of (relevant items ranked at or above it) / (its rank).
    With the ranks sorted, the k-th relevant item (1-based) has exactly k relevant items at or
    above it, so AP = mean_k k / rank_k.
    """
    r = np.sort(np.asarray(ranks, dtype=np.float64), axis=-1)  # inf padding sorts last
    k = np.arange(1, r.shape[-1] + 1, dtype=np.float64)
    precision_at_item = np.where(np.isfinite(r), k / r, 0.0)
    return _per_query(precision_at_item.sum(axis=-1), r)


def recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Relevant items ranked in the top k / all relevant items of the query."""
    r = np.asarray(ranks, dtype=np.float64)
    return _per_query((r <= k).sum(axis=-1).astype(np.float64), r)


def rank_distance(ranks: np.ndarray) -> np.ndarray:
    """Rank of the worst-ranked relevant item minus rank of the best-ranked one.

    Language-bias measure of Huang et al. (2023) when the relevant items are the same answer in
    different languages: 0 means all translations are ranked together. NaN for < 2 relevant items.
    """
    r = np.asarray(ranks, dtype=np.float64)
    finite = np.isfinite(r)
    worst = np.where(finite, r, -np.inf).max(axis=-1, initial=-np.inf)
    best = np.where(finite, r, np.inf).min(axis=-1, initial=np.inf)
    return np.where(finite.sum(axis=-1) >= 2, worst - best, np.nan)


def round_robin_ranks(rank_lang: np.ndarray, rel_lang: np.ndarray, lang_sizes: Sequence[int]) -> np.ndarray:
    """Pool ranks of relevant items when the per-language rankings are merged round-robin.

    Round k takes every language's k-th candidate, languages in id order; a language whose list
    has run out is skipped. No language is preferred, so the Multi numbers of this merge are what
    the model's per-language rankings give with language bias removed entirely: the gap between
    them and the pooled numbers is bias, the gap between them and perfect is per-language ranking
    quality. `rank_lang` (..., m): 1-based ranks inside each item's own language (inf = padding);
    `rel_lang`: the items' language ids; `lang_sizes`: candidates per language id.

    The item at rank r of language y follows its r - 1 predecessors in y, min(n_z, r) items of
    each language z < y and min(n_z, r - 1) of each language z > y.
    """
    r = np.asarray(rank_lang, dtype=np.float64)
    y = np.asarray(rel_lang)
    n = np.asarray(lang_sizes, dtype=np.float64)
    finite = np.isfinite(r)
    r_safe = np.where(finite, r, 1.0)[..., None]
    z = np.arange(len(n))
    earlier = np.where(z < y[..., None], np.minimum(n, r_safe), 0.0)
    later = np.where(z > y[..., None], np.minimum(n, r_safe - 1), 0.0)
    before = (r_safe[..., 0] - 1) + earlier.sum(-1) + later.sum(-1)
    return np.where(finite, before + 1, np.inf)


def own_language_share(top_langs: np.ndarray, query_langs: np.ndarray) -> np.ndarray:
    """Per query: share of its top results (a row of language ids, -1 = no result) in its own language."""
    top = np.asarray(top_langs)
    valid = top >= 0
    same = (top == np.asarray(query_langs)[:, None]) & valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid.sum(axis=1) > 0, same.sum(axis=1) / valid.sum(axis=1), np.nan)


def group_mean(values: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` per group id in [0, n_groups), skipping NaN -> (means with NaN for empty groups, counts)."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups)
    ok = np.isfinite(v)
    sums = np.bincount(g[ok], weights=v[ok], minlength=n_groups)
    counts = np.bincount(g[ok], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts


def macro_mean(values: Mapping[str, float] | Sequence[float] | np.ndarray) -> float:
    """Unweighted mean over groups (e.g. source languages), skipping NaN/None; NaN when none is left."""
    vals = list(values.values()) if isinstance(values, Mapping) else list(values)
    arr = np.asarray([np.nan if v is None else v for v in vals], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def ranks_from_scores(scores: np.ndarray, relevant: Sequence[int]) -> np.ndarray:
    """1-based ranks of `relevant` indices in one query's score vector, highest score first.

    Ties are broken by index (the lower index ranks higher) -- the same rule the LAReQA evaluator
    uses. A reference implementation for tests and small pools (full stable sort).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(1, len(order) + 1)
    return rank_of[np.asarray(relevant, dtype=np.int64)].astype(np.float64)
