"""FAISS search: exact blocked search equals brute force; approximate indexes report recall vs exact."""

from __future__ import annotations

import numpy as np
import pytest

from polyret.errors import PolyretError
from polyret.search import SearchOptions, exact_search, recall_vs_exact, search
from polyret.stream import encode_corpus


def _unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q, c, k):
    s = q.astype(np.float64) @ c.astype(np.float64).T
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


@pytest.mark.parametrize("block", [401, 5000])
def test_exact_search_matches_brute_force_for_any_block_size(block):
    rng = np.random.default_rng(1)
    c, q = _unit(rng, 3000, 48), _unit(rng, 70, 48)
    scores, rows = exact_search(q, c, 25, corpus_block=block)
    ref_scores, ref_rows = _brute(q, c, 25)
    assert scores.shape == rows.shape == (70, 25)
    np.testing.assert_array_equal(rows, ref_rows)  # random floats: no ties
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_corpus_smaller_than_k_pads_with_minus_one():
    rng = np.random.default_rng(2)
    c, q = _unit(rng, 5, 8), _unit(rng, 3, 8)
    scores, rows = exact_search(q, c, 8, corpus_block=2)
    assert (rows[:, 5:] == -1).all()
    assert sorted(rows[0, :5].tolist()) == [0, 1, 2, 3, 4]


def test_store_and_array_give_the_same_result(tmp_path):
    rng = np.random.default_rng(3)
    c, q = _unit(rng, 500, 16), _unit(rng, 20, 16)
    store = encode_corpus(
        lambda: ((f"d{i}", str(i)) for i in range(500)),
        tmp_path / "e",
        lambda texts: c[[int(t) for t in texts]],
        identity="x",
        chunk_size=128,
        show_progress=False,
    )
    a = search(q, c, 30, options=SearchOptions(corpus_block=64))
    b = search(q, store, 30, options=SearchOptions(corpus_block=100))
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.info["kind"] == "flat" and "recall_vs_exact@30" not in a.info


def test_recall_vs_exact_counts_overlap():
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    approx = np.array([[4, 9, 2, 8], [6, 5, 7, 0]])
    assert recall_vs_exact(approx, exact) == pytest.approx((2 + 2) / (4 + 2))
    assert recall_vs_exact(exact, exact) == 1.0


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_report_recall_against_exact(kind):
    rng = np.random.default_rng(4)
    centres = _unit(rng, 30, 32)
    c = centres[rng.integers(0, 30, 2000)] + 0.3 * rng.normal(size=(2000, 32)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    q = c[rng.choice(2000, 200, replace=False)] + 0.05 * rng.normal(size=(200, 32)).astype(np.float32)
    res = search(q, c, 10, index=kind, options=SearchOptions(recall_sample=50, ivf_nprobe=8))
    recall = res.info["recall_vs_exact@10"]
    assert res.info["recall_sample_queries"] == 50
    # recompute the reported figure independently on the same sample
    sample = np.sort(np.random.default_rng(0).choice(200, 50, replace=False))
    _, ref_rows = _brute(q[sample], c, 10)
    assert recall == pytest.approx(recall_vs_exact(res.indices[sample], ref_rows))
    assert 0.8 < recall <= 1.0
    if kind == "ivf":
        # fewer probes must not find more of the exact neighbours
        low = search(q, c, 10, index="ivf", options=SearchOptions(recall_sample=50, ivf_nprobe=1))
        assert low.info["recall_vs_exact@10"] <= recall


def test_bad_arguments():
    rng = np.random.default_rng(5)
    c = _unit(rng, 10, 8)
    with pytest.raises(PolyretError, match="dimension 4 but the corpus vectors 8"):
        search(_unit(rng, 2, 4), c, 3)
    with pytest.raises(PolyretError, match="unknown index kind 'pq'"):
        search(c, c, 3, index="pq")
