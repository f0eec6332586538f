"""LAReQA ranking: every (question, relevant candidate) pair's rank among its language's candidates
(Mono / Cross) and in the whole pool (Multi), from ONE score matrix computed in blocks of questions and
never held whole (see `polyret.evaluate.lareqa_eval` for the settings and the tie rule).

rank = 1 + #(candidates scoring higher) + #(equal-scoring candidates with a lower index), counted per
language segment of a block of scores (sorted segment + binary search) and summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyret.data.lareqa import LareqaDataset
from polyret.errors import PolyretError
from polyret.evaluate.result import PerQuery
from polyret.progress import track

TIE_BREAKING = (
    "exact float32 score comparison; equal scores are ordered by candidate index in the "
    "dataset (lower first), i.e. a stable sort by candidate index"
)
CANDIDATE_MODES = ("sentence", "sentence+context")
MULTI_RECALL_K = 10
OWN_LANGUAGE_TOP_K = 10


@dataclass
class LareqaRanks:
    """Ranks of every (question, relevant candidate) pair, padded to (n_questions, m).

    rank_pool: 1-based rank in the whole multilingual pool (inf = padding).
    rank_lang: 1-based rank among the candidates of that candidate's language (inf = padding).
    rel_lang:  language id (index into dataset.languages) of the relevant candidate (-1 = padding).
    top_idx / top_scores: the best `top_k` candidates per question over the whole pool, best first.
    """

    rank_pool: np.ndarray
    rank_lang: np.ndarray
    rel_lang: np.ndarray
    top_idx: np.ndarray
    top_scores: np.ndarray
    # The per-query values of these ranks (`lareqa_per_query`), kept by `score_lareqa` so the
    # `EvalResult` reuses them instead of computing them a second time.
    per_query: dict[str, PerQuery] | None = None


def _as_matrix(x, rows: int, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise PolyretError(f"{what} embeddings have shape {arr.shape}; expected ({rows}, dim)")
    if not np.isfinite(arr).all():
        raise PolyretError(f"{what} embeddings contain NaN or inf")
    return arr


def rank_lareqa(
    question_emb,
    candidate_emb,
    dataset: LareqaDataset,
    *,
    top_k: int = 100,
    score_rows: int = 512,
    show_progress: bool = False,
) -> LareqaRanks:
    """Ranks of all relevant pairs and the top-k lists, from embeddings (scores = dot products).

    Scores are computed `score_rows` questions at a time. Each block's scores are sorted per
    candidate language (numpy's SIMD sort, one thread per language segment); a binary search of
    each relevant item's score in every language segment then gives how many candidates of that
    language score above it (-> rank within its language) and, summed, in the whole pool. Block
    size changes speed and memory, never results.
    """
    import torch
    from concurrent.futures import ThreadPoolExecutor

    nq, nc = dataset.n_questions, dataset.n_candidates
    Q = _as_matrix(question_emb, nq, "question")
    C = _as_matrix(candidate_emb, nc, "candidate")
    if Q.shape[1] != C.shape[1]:
        raise PolyretError(f"question dim {Q.shape[1]} != candidate dim {C.shape[1]}")
    n_lang = len(dataset.languages)
    c_lang = dataset.candidate_lang_ids()
    # Columns grouped by language (stable, so candidate index order is kept inside a language).
    perm = np.argsort(c_lang, kind="stable")
    inv_perm = np.empty(nc, dtype=np.int64)
    inv_perm[perm] = np.arange(nc)
    lang_sizes = np.bincount(c_lang, minlength=n_lang)
    bounds = np.concatenate([[0], np.cumsum(lang_sizes)])
    segments = [(y, int(bounds[y]), int(bounds[y + 1])) for y in range(n_lang) if lang_sizes[y] > 0]

    rel = dataset.relevant_matrix()  # (nq, m) original candidate indices, -1 padded
    m = rel.shape[1]
    valid = rel >= 0
    rel_pos = np.where(valid, inv_perm[np.maximum(rel, 0)], 0)  # grouped column of each relevant item
    rel_lang = np.where(valid, c_lang[np.maximum(rel, 0)], -1)

    Qt = torch.from_numpy(Q)
    Ct = torch.from_numpy(C[perm])  # perm[j] = original candidate index of grouped column j
    col_lang = c_lang[perm]
    k = min(top_k, nc)
    rank_pool = np.full((nq, m), np.inf)
    rank_lang = np.full((nq, m), np.inf)
    top_idx = np.full((nq, k), -1, dtype=np.int64)
    top_scores = np.zeros((nq, k), dtype=np.float32)

    def count_segment(args):
        # For one language segment: per relevant score v, #candidates above v and #equal to v;
        # plus the segment's k best scores (for the top-k threshold).
        S_np, V, (y, a, b) = args
        srt = np.sort(S_np[:, a:b], axis=1)  # ascending, contiguous
        srt_t = torch.from_numpy(srt)
        at_most = torch.searchsorted(srt_t, V, right=True).numpy()
        below = torch.searchsorted(srt_t, V, right=False).numpy()
        return y, (b - a) - at_most, at_most - below, srt[:, -k:]

    workers = max(1, min(len(segments), torch.get_num_threads()))
    with torch.inference_mode(), ThreadPoolExecutor(workers) as pool:
        for s0 in track(range(0, nq, score_rows), "score", show=show_progress):
            e0 = min(nq, s0 + score_rows)
            S = Qt[s0:e0] @ Ct.T  # (rows, nc), columns grouped by language
            S_np = S.numpy()
            vb = valid[s0:e0]
            V = np.take_along_axis(S_np, rel_pos[s0:e0], axis=1)
            V = torch.from_numpy(np.where(vb, V, np.inf).astype(np.float32))  # padding: above nothing
            above = np.zeros((e0 - s0, m, n_lang), dtype=np.int64)
            n_equal = np.zeros((e0 - s0, m), dtype=np.int64)
            seg_tops = []
            for y, n_above, n_eq, tops in pool.map(count_segment, [(S_np, V, seg) for seg in segments]):
                above[:, :, y] = n_above
                n_equal += n_eq
                seg_tops.append(tops)
            top_idx[s0:e0], top_scores[s0:e0] = _top_k_block(S_np, np.concatenate(seg_tops, axis=1), k, perm)
            rl = np.maximum(rel_lang[s0:e0], 0)
            r_lang = 1 + np.take_along_axis(above, rl[:, :, None], axis=2)[..., 0]
            r_pool = 1 + above.sum(-1)
            # Exact ties with other candidates (n_equal counts the item itself): lower index first.
            for bi, ki in zip(*np.nonzero(vb & (n_equal > 1))):
                row, v, c = S_np[bi], S_np[bi, rel_pos[s0 + bi, ki]], rel[s0 + bi, ki]
                before = (row > v) | ((row == v) & (perm < c))
                r_pool[bi, ki] = 1 + before.sum()
                r_lang[bi, ki] = 1 + (before & (col_lang == rel_lang[s0 + bi, ki])).sum()
            rank_pool[s0:e0] = np.where(vb, r_pool, np.inf)
            rank_lang[s0:e0] = np.where(vb, r_lang, np.inf)
    return LareqaRanks(rank_pool, rank_lang, rel_lang, top_idx, top_scores)


def _top_k_block(S_np: np.ndarray, segment_tops: np.ndarray, k: int, col_orig: np.ndarray):
    """Top-k per row, best first, equal scores ordered by original candidate index (lower first).

    The k-th best score per row (from the per-language top scores) is a threshold; every candidate
    at or above it is kept (ties at the threshold included), then each row is ordered exactly and cut.
    """
    threshold = np.sort(segment_tops, axis=1)[:, -k]
    rows, cols = np.nonzero(S_np >= threshold[:, None])
    scores = S_np[rows, cols]
    orig = col_orig[cols]
    order = np.lexsort((orig, -scores.astype(np.float64), rows))  # row, then score desc, then index
    starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=S_np.shape[0]))[:-1]])
    take = order[(starts[:, None] + np.arange(k)[None, :]).reshape(-1)].reshape(-1, k)
    return orig[take], scores[take]
