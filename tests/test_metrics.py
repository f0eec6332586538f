"""Metric functions: hand-worked values, padding/NaN rules, and agreement with ranx and pytrec_eval."""

from __future__ import annotations

import numpy as np
import pytest

from polyret import metrics


def test_hand_worked_values():
    # One query, relevant items at ranks 6, 1, 3 (unsorted on purpose), one padding slot.
    r = metrics.pad_ranks([[6, 1, 3], [2], []], width=4)
    ap = metrics.average_precision(r)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3 + 3 / 6) / 3)
    assert ap[1] == pytest.approx(0.5)
    assert np.isnan(ap[2])
    assert metrics.recall_at_k(r, 1)[0] == pytest.approx(1 / 3)
    assert metrics.recall_at_k(r, 5)[0] == pytest.approx(2 / 3)
    assert metrics.recall_at_k(r, 1)[1] == 0.0
    rd = metrics.rank_distance(r)
    assert rd[0] == 5 and np.isnan(rd[1]) and np.isnan(rd[2])


def test_own_language_share_and_averaging():
    top = np.array([[0, 0, 1, -1], [1, 1, 1, 1], [-1, -1, -1, -1]])
    share = metrics.own_language_share(top, np.array([0, 0, 1]))
    assert share[0] == pytest.approx(2 / 3) and share[1] == 0.0 and np.isnan(share[2])
    means, counts = metrics.group_mean(np.array([1.0, np.nan, 3.0, 5.0]), np.array([0, 0, 0, 2]), 3)
    assert means[0] == 2.0 and np.isnan(means[1]) and means[2] == 5.0
    assert counts.tolist() == [2, 0, 1]
    assert metrics.macro_mean({"a": 0.5, "b": None, "c": 1.0, "d": float("nan")}) == 0.75
    assert np.isnan(metrics.macro_mean([]))


def test_ranks_from_scores_breaks_ties_by_index():
    s = np.array([0.5, 0.9, 0.5, 0.1, 0.5])
    assert metrics.ranks_from_scores(s, [0, 2, 4, 1, 3]).tolist() == [2, 3, 4, 1, 5]


def _random_runs(seed=0, n_q=40, n_docs=60):
    rng = np.random.default_rng(seed)
    scores = rng.random((n_q, n_docs))  # continuous: no ties, so every tool ranks identically
    rel = [rng.choice(n_docs, size=rng.integers(1, 8), replace=False) for _ in range(n_q)]
    qrels = {f"q{i:03d}": {f"d{j}": 1 for j in r} for i, r in enumerate(rel)}
    run = {f"q{i:03d}": {f"d{j}": float(scores[i, j]) for j in range(n_docs)} for i in range(n_q)}
    ranks = metrics.pad_ranks([metrics.ranks_from_scores(scores[i], r) for i, r in enumerate(rel)])
    return qrels, run, ranks


def test_agrees_with_pytrec_eval():
    import pytrec_eval

    qrels, run, ranks = _random_runs(1)
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall.1,10", "P.1"}).evaluate(run)
    ours_ap = metrics.average_precision(ranks)
    ours_r10 = metrics.recall_at_k(ranks, 10)
    ours_r1 = metrics.recall_at_k(ranks, 1)
    for i in range(len(ranks)):
        m = ev[f"q{i:03d}"]
        assert ours_ap[i] == pytest.approx(m["map"], abs=1e-12)
        assert ours_r10[i] == pytest.approx(m["recall_10"], abs=1e-12)
        assert ours_r1[i] == pytest.approx(m["recall_1"], abs=1e-12)


def test_agrees_with_ranx():
    from ranx import Qrels, Run, evaluate

    qrels, run, ranks = _random_runs(2)
    got = evaluate(Qrels(qrels), Run(run), ["map", "recall@10", "recall@1"], return_mean=False)
    np.testing.assert_allclose(metrics.average_precision(ranks), got["map"], rtol=1e-9)
    np.testing.assert_allclose(metrics.recall_at_k(ranks, 10), got["recall@10"], rtol=1e-9)
    np.testing.assert_allclose(metrics.recall_at_k(ranks, 1), got["recall@1"], rtol=1e-9)


def test_round_robin_ranks_skip_exhausted_languages():
    # Languages of 3, 1 and 2 candidates: the merge is a1 b1 c1 a2 c2 a3.
    sizes = [3, 1, 2]
    items = [(0, 1, 1), (1, 1, 2), (2, 1, 3), (0, 2, 4), (2, 2, 5), (0, 3, 6)]  # (language, rank in it, pool rank)
    r = np.array([[rank for _, rank, _ in items]], dtype=float)
    y = np.array([[lang for lang, _, _ in items]])
    assert metrics.round_robin_ranks(r, y, sizes).tolist() == [[p for _, _, p in items]]
    padded = metrics.round_robin_ranks(np.array([[2.0, np.inf]]), np.array([[2, -1]]), sizes)
    assert padded[0, 0] == 5 and np.isinf(padded[0, 1])
