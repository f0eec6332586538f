"""BEIR evaluation: metrics agree with ranx and hand computation, full-ranking MAP is exact, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.cli import main
from polyret.data.beir import BeirDoc, BeirQuery, write_beir
from polyret.errors import PolyretError
from polyret.evaluate.beir import evaluate_beir
from polyret.evaluate.result import load_per_query
from polyret.evaluate.retrieval import full_ranking_run, per_query_metrics, rank_rows
from polyret.stream import encode_corpus
from retrieval_fakes import TopicEncoder, synthetic_beir


def _reference(qrels, run, depth_map):
    """Textbook definitions, written independently of trec_eval (no ties in the runs used here)."""
    out = {}
    for q, judged in qrels.items():
        ranked = [d for d, _ in run.get(q, [])]
        rel = {d: r for d, r in judged.items() if r > 0}
        gains = [rel.get(d, 0) for d in ranked]
        ideal = sorted(rel.values(), reverse=True)
        dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains[:10]))
        idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal[:10]))
        hits = [i for i, d in enumerate(ranked[:depth_map]) if d in rel]
        out[q] = {
            "ndcg@10": dcg / idcg if idcg else 0.0,
            "recall@100": sum(d in rel for d in ranked[:100]) / len(rel) if rel else 0.0,
            "mrr@10": next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in rel), 0.0),
            f"map@{depth_map}": sum((n + 1) / (i + 1) for n, i in enumerate(hits)) / len(rel) if rel else 0.0,
        }
    return out


def _mean(per_query, key):
    return float(np.mean([m[key] for m in per_query.values()]))


def test_metrics_by_hand():
    qrels = {"q1": {"a": 1, "b": 1, "c": 1, "z": 0}, "q2": {"x": 1}, "q3": {"n": 0}}
    # q1: relevant at ranks 1 and 3 of 4, "c" never retrieved; q2: relevant at rank 11; q3: nothing relevant
    run = {
        "q1": [("a", 0.9), ("z", 0.8), ("b", 0.7), ("w", 0.6)],
        "q2": [(f"o{i}", 1.0 - i / 100) for i in range(10)] + [("x", 0.5)],
    }
    m = per_query_metrics(qrels, run, map_name="map")
    assert m["q1"]["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert m["q1"]["mrr@10"] == 1.0 and m["q1"]["recall@100"] == pytest.approx(2 / 3)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["q1"]["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4)) / idcg)
    assert m["q2"]["mrr@10"] == 0.0 and m["q2"]["map"] == pytest.approx(1 / 11) and m["q2"]["recall@100"] == 1.0
    assert m["q3"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "map": 0.0}  # trec_eval -c: counts as 0


def test_ties_go_to_the_earlier_corpus_row_and_trec_eval_keeps_that_order():
    rows, scores = np.array([5, 2, 7, -1]), np.array([1.0, 1.0, 0.5, -np.inf], dtype=np.float32)
    assert rows[rank_rows(rows, scores)].tolist() == [2, 5, 7]
    # trec_eval alone would put "b" before "a" (doc id descending); the given order must win
    for ranking, rr in (([("a", 1.0), ("b", 1.0)], 1.0), ([("b", 1.0), ("a", 1.0)], 0.5)):
        m = per_query_metrics({"q": {"a": 1}}, {"q": ranking}, map_name="map")
        assert m["q"]["mrr@10"] == rr and m["q"]["map"] == rr


def test_metrics_agree_with_a_reference_implementation_on_random_runs():
    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(400)]
    qrels = {f"q{j}": {d: int(rng.integers(0, 3)) for d in rng.choice(docs, 8, replace=False)} for j in range(50)}
    qrels = {q: ds | {docs[j]: 1} for j, (q, ds) in enumerate(qrels.items())}  # at least one relevant each
    run = {q: sorted(zip(docs, rng.random(400).tolist()), key=lambda ds: -ds[1])[:150] for q in qrels}
    ours = per_query_metrics(qrels, run, map_name="map@150")
    ref = _reference(qrels, run, 150)
    for q in qrels:
        for key in ("ndcg@10", "recall@100", "mrr@10", "map@150"):
            assert ours[q][key] == pytest.approx(ref[q][key], abs=1e-9), (q, key)


def test_full_ranking_map_equals_map_over_every_document(tmp_path):
    docs, queries, qrels = synthetic_beir(n_docs=500, n_queries=40)
    enc = TopicEncoder(noise=1.6)  # noisy, so relevant documents spread deep into the ranking
    store = encode_corpus(
        lambda: ((d.id, d.text) for d in docs), tmp_path / "e", enc, identity="t", show_progress=False
    )
    qv = enc([q.text for q in queries])
    row = {d.id: i for i, d in enumerate(docs)}
    rel_rows = [np.array(sorted(row[d] for d, r in qrels[q.id].items() if r > 0)) for q in queries]
    partial = full_ranking_run(qv, store, rel_rows, query_block=7, corpus_block=64)
    ids = [d.id for d in docs]
    all_scores = qv @ store.memmap().T
    every_row = np.arange(len(ids))
    complete = {
        q.id: [(ids[j], float(all_scores[i, j])) for j in rank_rows(every_row, all_scores[i])]
        for i, q in enumerate(queries)
    }
    kept = {
        q.id: [(ids[partial[i][0][j]], float(partial[i][1][j])) for j in rank_rows(*partial[i])]
        for i, q in enumerate(queries)
    }
    assert sum(map(len, kept.values())) < 0.7 * 500 * 40  # really partial
    a = per_query_metrics(qrels, complete, map_name="map")
    b = per_query_metrics(qrels, complete, map_run=kept, map_name="map")
    for q in qrels:
        assert b[q]["map"] == pytest.approx(a[q]["map"], abs=1e-12)
    assert np.mean([a[q]["map"] for q in qrels]) < 0.9


def _beir_dir(tmp_path, **kw):
    docs, queries, qrels = synthetic_beir(**kw)
    return write_beir(tmp_path / "beir", docs, queries, qrels), qrels


def test_evaluate_beir_end_to_end_matches_a_reference_on_its_own_run_file(tmp_path):
    root, qrels = _beir_dir(tmp_path)
    out = tmp_path / "run"
    res = evaluate_beir(
        None, root, out_dir=out, encoders=TopicEncoder().encoders(), map_depth=100, chunk_size=128, show_progress=False
    )
    assert set(res["metrics"]) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert res["n_queries"] == 60 and res["n_docs"] == 600 and res["n_queries_without_relevant"] == 0
    assert {k: v["n_queries"] for k, v in res["per_language"].items()} == {"de": 20, "en": 20, "sw": 20}
    for name in (
        "results.json",
        "report.md",
        "run.trec",
        "per_query.npz",
        "beir_bars.png",
        "corpus-embeddings/embeddings.npy",
    ):
        assert (out / name).exists(), name
    run: dict[str, list] = {}
    for line in (out / "run.trec").read_text().splitlines():
        qid, _, docid, rank, score, tag = line.split()
        assert int(rank) == len(run.get(qid, [])) + 1
        run.setdefault(qid, []).append((docid, float(score)))
    assert all(len(d) == 100 for d in run.values())
    ref = _reference(qrels, run, 100)
    for key in ("ndcg@10", "recall@100", "mrr@10", "map@100"):
        assert res["metrics"][key] == pytest.approx(_mean(ref, key), abs=1e-5), (
            key
        )  # run.trec scores are rounded to 1e-6
    assert 0.2 < res["metrics"]["ndcg@10"] < 0.95  # a real, imperfect ranking
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == res["metrics"]
    per_q = load_per_query(out / "per_query.npz")["ndcg@10"]
    assert len(per_q.ids) == 60 and np.mean(per_q.values) == pytest.approx(res["metrics"]["ndcg@10"])

    # our own run dir: refused without --overwrite; with it, the embeddings are reused, not re-encoded
    with pytest.raises(PolyretError, match="already holds a finished eval-beir output"):
        evaluate_beir(None, root, out_dir=out, encoders=TopicEncoder().encoders(), show_progress=False)
    enc = TopicEncoder()
    res2 = evaluate_beir(
        None,
        root,
        out_dir=out,
        encoders=enc.encoders(),
        map_depth=None,
        index="hnsw",
        overwrite=True,
        show_progress=False,
    )
    assert enc.calls == [60]  # queries only
    assert res2["search"]["recall_vs_exact@100"] > 0.95 and "map" in res2["metrics"]


def test_partial_corpus_and_unjudged_relevance_are_reported(tmp_path):
    root, _ = _beir_dir(tmp_path, n_docs=200, n_queries=10)
    with open(root / "qrels" / "test.tsv", "a") as f:
        f.write("q1\tmissing-doc\t1\n")
    with open(root / "queries.jsonl", "a") as f:
        f.write(json.dumps({"_id": "q-none", "text": "topic 3 nothing"}) + "\n")
    with open(root / "qrels" / "test.tsv", "a") as f:
        f.write("q-none\td0003\t0\n")
    res = evaluate_beir(None, root, encoders=TopicEncoder().encoders(), show_progress=False)
    assert res["n_relevant_missing_from_corpus"] == 1 and res["n_queries_without_relevant"] == 1
    assert any("not in the corpus" in w for w in res["warnings"])
    assert res["n_queries"] == 11


def test_evaluate_beir_with_a_real_encoder(tmp_path, tiny_model):
    docs = [
        BeirDoc(f"d{i}", f"sentence number {i} about {w}") for i, w in enumerate(["cats", "dogs", "rain", "sun"] * 30)
    ]
    queries = [BeirQuery("q1", "cats"), BeirQuery("q2", "rain")]
    root = write_beir(tmp_path / "b", docs, queries, {"q1": {"d0": 1}, "q2": {"d2": 1}})
    res = evaluate_beir(tiny_model, root, out_dir=tmp_path / "o", show_progress=False, chunk_size=50, bf16=False)
    assert res["n_docs"] == 120
    # Independent reference: the model's own cosine ranking of all 120 documents, nDCG@10 of the one
    # relevant document by hand (1 / log2(rank + 1) within the top 10), averaged over the 2 queries.
    d_emb = tiny_model.encode([d.text for d in docs], prompt_name="passage", normalize_embeddings=True)
    expected = []
    for q, rel in (("cats", 0), ("rain", 2)):
        scores = d_emb @ tiny_model.encode([q], prompt_name="query", normalize_embeddings=True)[0]
        rank = 1 + int(np.sum(scores > scores[rel]))
        expected.append(1 / np.log2(rank + 1) if rank <= 10 else 0.0)
    assert res["metrics"]["ndcg@10"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert res["encoder_identity"].startswith(res["model"])


def test_cli_errors_before_loading_a_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "beir", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "does not" in capsys.readouterr().err
    root, _ = _beir_dir(tmp_path, n_docs=200, n_queries=5)
    with pytest.raises(SystemExit):
        main(["eval", "beir", "--data", str(root), "--out", str(tmp_path / "o"), "--map-depth", "deep"])
    assert "--map-depth must be a positive integer or 'all'" in capsys.readouterr().err
