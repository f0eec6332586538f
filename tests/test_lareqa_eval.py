"""LAReQA evaluation: a hand-worked toy pool, an independent brute-force reference on the MLQA-R-shaped
fixture and on XQuAD-R, exact tie-breaking, pytrec_eval cross-checks, output files, cache, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import need
from test_lareqa_fixture import MLQA_LANGS, build_mlqa_like

from polyret.data.lareqa import LareqaCandidate, LareqaDataset, LareqaQuestion, load_lareqa
from polyret.errors import PolyretError
from polyret.evaluate.lareqa_eval import evaluate_lareqa, lareqa_result, rank_lareqa, score_lareqa


# ---- an independent, slow reference: explicit sorted lists and precision loops --------------


def _ap(order, relevant):
    hits, precisions = 0, []
    for r, c in enumerate(order, 1):
        if c in relevant:
            hits += 1
            precisions.append(hits / r)
    return sum(precisions) / len(relevant)


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def reference_results(S: np.ndarray, ds: LareqaDataset) -> dict:
    """Every setting computed literally from the definitions (ties: lower candidate index first)."""
    langs = ds.languages
    cl = [c.lang for c in ds.candidates]
    rows = {l: [] for l in langs}
    for qi, q in enumerate(ds.questions):
        rel = set(ds.relevant[qi].tolist())
        order = list(np.lexsort((np.arange(len(cl)), -S[qi].astype(np.float64))))
        rec = {"mono": None, "cross": {}}
        orders = {y: [c for c in order if cl[c] == y] for y in langs}
        # Round-robin merge, written out: every language's k-th candidate in round k, languages in
        # dataset order, a language that has run out skipped.
        merged = [orders[y][k] for k in range(len(order)) for y in langs if k < len(orders[y])]
        merged_rank = {c: i for i, c in enumerate(merged, 1)}
        rr_ranks = sorted(merged_rank[c] for c in rel)
        rec["rr"] = (_ap(merged, rel), rr_ranks[-1] - rr_ranks[0] if len(rel) >= 2 else None)
        for y in langs:
            order_y = orders[y]
            rel_y = rel & set(order_y)
            if not rel_y:
                continue
            res = (_ap(order_y, rel_y), len(rel_y & set(order_y[:1])) / len(rel_y))
            if y == q.lang:
                rec["mono"] = res
            else:
                rec["cross"][y] = res
        pool_ranks = sorted(order.index(c) + 1 for c in rel)
        rec["multi"] = (_ap(order, rel), len(rel & set(order[:10])) / len(rel))
        rec["rd"] = pool_ranks[-1] - pool_ranks[0] if len(rel) >= 2 else None
        rec["own"] = sum(cl[c] == q.lang for c in order[:10]) / len(order[:10])
        rows[q.lang].append(rec)
    out = {"mono": {}, "cross": {}, "pairs": {}, "multi": {}, "rd": {}, "own": {}, "rr": {}}
    for x in langs:
        rs = rows[x]
        monos = [r["mono"] for r in rs if r["mono"]]
        out["mono"][x] = (_mean([m[0] for m in monos]), _mean([m[1] for m in monos]))
        pair_vals = []
        for y in langs:
            vals = [r["cross"][y] for r in rs if y in r["cross"]]
            if y != x and vals:
                out["pairs"][f"{x}->{y}"] = (_mean([v[0] for v in vals]), _mean([v[1] for v in vals]), len(vals))
                pair_vals.append(out["pairs"][f"{x}->{y}"])
        out["cross"][x] = (_mean([p[0] for p in pair_vals]), _mean([p[1] for p in pair_vals]))
        out["multi"][x] = (_mean([r["multi"][0] for r in rs]), _mean([r["multi"][1] for r in rs]))
        out["rd"][x] = _mean([r["rd"] for r in rs])
        out["own"][x] = _mean([r["own"] for r in rs])
        out["rr"][x] = (_mean([r["rr"][0] for r in rs]), _mean([r["rr"][1] for r in rs]))
    return out


def assert_matches_reference(res: dict, ref: dict) -> None:
    def close(a, b):
        if b is None:
            assert a is None or np.isnan(a)
        else:
            assert a == pytest.approx(b, abs=1e-9)

    for x in res["languages"]:
        close(res["mono"]["per_language"][x]["map"], ref["mono"][x][0])
        close(res["mono"]["per_language"][x]["recall@1"], ref["mono"][x][1])
        close(res["cross"]["per_language"][x]["map"], ref["cross"][x][0])
        close(res["cross"]["per_language"][x]["recall@1"], ref["cross"][x][1])
        close(res["multi"]["per_language"][x]["map"], ref["multi"][x][0])
        close(res["multi"]["per_language"][x]["recall@10"], ref["multi"][x][1])
        close(res["rank_distance"]["per_language"][x], ref["rd"][x])
        close(res["top10_own_language_share"]["per_language"][x], ref["own"][x])
        close(res["round_robin"]["per_language"][x]["map"], ref["rr"][x][0])
        close(res["round_robin"]["per_language"][x]["rank_distance"], ref["rr"][x][1])
    assert set(res["cross"]["per_pair"]) == set(ref["pairs"])
    for pair, (m, r1, n) in ref["pairs"].items():
        got = res["cross"]["per_pair"][pair]
        close(got["map"], m)
        close(got["recall@1"], r1)
        assert got["n_questions"] == n


# ---- the hand-worked toy pool ----------------------------------------------------------------


def toy_pool():
    """Candidates 0-2 English, 3-4 German; question A's answers are 1 and 3, B's are 2 and 4.

    With C = identity, the score matrix is Q itself (exact in float32). qA.de scores candidates 1
    and 2 equally: the tie must rank 1 (lower index) first.
    """
    qs = [
        LareqaQuestion("A", "en", "a-en"),
        LareqaQuestion("A", "de", "a-de"),
        LareqaQuestion("B", "en", "b-en"),
        LareqaQuestion("B", "de", "b-de"),
    ]
    cs = [LareqaCandidate(l, f"s{i}", f"s{i}", f"p{i}", 0) for i, l in enumerate(["en", "en", "en", "de", "de"])]
    ds = LareqaDataset("toy", qs, cs, [[1, 3], [1, 3], [2, 4], [2, 4]], languages=("en", "de"))
    S = np.array(
        [
            [0.5, 0.25, 0.75, 0.875, 0.125],  # A.en: pool 3,2,0,1,4
            [0.25, 0.5, 0.5, 0.125, 0.75],  # A.de: pool 4,1,2,0,3 (1 before 2 by index)
            [0.75, 0.5, 0.625, 0.375, 0.25],  # B.en: pool 0,2,1,3,4
            [0.125, 0.25, 0.875, 0.5, 0.625],  # B.de: pool 2,4,3,1,0
        ],
        dtype=np.float32,
    )
    return ds, S, np.eye(5, dtype=np.float32)


def test_toy_pool_hand_worked():
    ds, Q, C = toy_pool()
    ranks = rank_lareqa(Q, C, ds)
    assert ranks.rank_pool.tolist() == [[4, 1], [2, 5], [2, 5], [1, 2]]
    assert ranks.rank_lang.tolist() == [[3, 1], [1, 2], [2, 2], [1, 1]]
    assert ranks.top_idx[1].tolist() == [4, 1, 2, 0, 3]
    res = score_lareqa(Q, C, ds)
    mono, cross, multi = res["mono"], res["cross"], res["multi"]
    # Mono: A.en ranks 1 third among en (AP 1/3), B.en second (1/2); A.de 3 second (1/2), B.de 4 first (1).
    assert mono["per_language"]["en"]["map"] == pytest.approx(5 / 12)
    assert mono["per_language"]["de"]["map"] == pytest.approx(3 / 4)
    assert mono["per_language"]["de"]["recall@1"] == pytest.approx(1 / 2)
    assert mono["map"] == pytest.approx(7 / 12) and mono["recall@1"] == pytest.approx(1 / 4)
    # Cross: en->de (1 + 1/2)/2; de->en both first (A.de only thanks to the tie rule).
    assert cross["per_pair"]["en->de"]["map"] == pytest.approx(3 / 4)
    assert cross["per_pair"]["de->en"] == {"map": 1.0, "recall@1": 1.0, "n_questions": 2}
    assert cross["map"] == pytest.approx(7 / 8) and cross["recall@1"] == pytest.approx(3 / 4)
    # Multi AP: A.en (1/1 + 2/4)/2, A.de (1/2 + 2/5)/2, B.en (1/2 + 2/5)/2, B.de 1.
    assert multi["per_language"]["en"]["map"] == pytest.approx((0.75 + 0.45) / 2)
    assert multi["per_language"]["de"]["map"] == pytest.approx((0.45 + 1.0) / 2)
    assert multi["map"] == pytest.approx(0.6625) and multi["recall@10"] == 1.0
    assert res["rank_distance"]["per_language"] == {"en": 3.0, "de": 2.0}
    assert res["rank_distance"]["mean"] == pytest.approx(2.5)
    share = res["top10_own_language_share"]
    assert share["per_language"] == pytest.approx({"en": 0.6, "de": 0.4}) and share["mean"] == pytest.approx(0.5)
    assert np.allclose(res["map_matrix"]["rows_query_cols_candidate"], [[5 / 12, 3 / 4], [1.0, 3 / 4]])
    # Round-robin merge (en 1st, de 1st, en 2nd, de 2nd, en 3rd): A.en's answers at 5 and 2, A.de's at
    # 1 and 4, B.en's at 3 and 4, B.de's at 1 and 2.
    rr = res["round_robin"]
    assert rr["per_language"]["en"] == pytest.approx({"map": (0.45 + 5 / 12) / 2, "rank_distance": 2.0})
    assert rr["per_language"]["de"] == pytest.approx({"map": (0.75 + 1.0) / 2, "rank_distance": 2.0})
    assert_matches_reference(res, reference_results(Q @ C.T, ds))


# ---- MLQA-R-shaped fixture and XQuAD-R against the reference ----------------------------------


@pytest.fixture(scope="module")
def mlqa_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlqa-like") / "mlqa-r"
    build_mlqa_like(root, n_questions=120, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return root, load_lareqa(root)


def _random_embeddings(ds, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    # Shared direction per question id pulls relevant items up a little, so ranks vary realistically.
    qids = sorted({q.qid for q in ds.questions})
    base = {q: rng.standard_normal(dim) for q in qids}
    Q = np.stack([base[q.qid] + rng.standard_normal(dim) for q in ds.questions]).astype(np.float32)
    owner = {}
    for q, rel in zip(ds.questions, ds.relevant):
        for c in rel.tolist():
            owner[c] = q.qid
    C = np.stack([(base[owner[i]] if i in owner else 0) + rng.standard_normal(dim) for i in range(ds.n_candidates)])
    return Q, C.astype(np.float32)


def test_mlqa_shape_matches_reference_and_skips_absent_targets(mlqa_like):
    _, ds = mlqa_like
    Q, C = _random_embeddings(ds)
    res, ranks = score_lareqa(Q, C, ds, return_ranks=True)
    ref = reference_results(Q @ C.T, ds)
    assert_matches_reference(res, ref)
    result = lareqa_result(res, ranks, ds)
    result.check_per_query()  # every per-query array (round_robin.* included) reproduces its number
    assert {"round_robin.map", "round_robin.rank_distance"} <= set(result.per_query)
    # A question counts in X->Y only if its id exists in Y.
    langs_of = {}
    for q in ds.questions:
        langs_of.setdefault(q.qid, set()).add(q.lang)
    for x in MLQA_LANGS:
        for y in MLQA_LANGS:
            n = sum(1 for q in ds.questions if q.lang == x and y in langs_of[q.qid])
            pair = res["cross"]["per_pair"].get(f"{x}->{y}")
            if x == y:
                assert res["mono"]["per_language"][x]["n_questions"] == n
            elif n == 0:
                assert pair is None
            else:
                assert pair["n_questions"] == n < sum(q.lang == x for q in ds.questions)
    # 2-4 relevant items -> every question has a rank distance.
    assert sum(res["rank_distance"]["n_questions"].values()) == ds.n_questions
    # Cross mAP into a language: the mean of its column over the query languages that reach it.
    for y in MLQA_LANGS:
        col = [
            res["cross"]["per_pair"][f"{x}->{y}"]["map"] for x in MLQA_LANGS if f"{x}->{y}" in res["cross"]["per_pair"]
        ]
        assert res["cross"]["per_target_language"][y] == pytest.approx(np.mean(col))
        assert result.metrics[f"cross.map_into[{y}]"] == pytest.approx(np.mean(col))
    assert "Cross mAP into" in result.report


def test_ties_are_broken_by_candidate_index(mlqa_like):
    _, ds = mlqa_like
    rng = np.random.default_rng(5)
    # Binary 3-dim embeddings: scores take 4 values, so nearly every rank involves ties.
    Q = rng.integers(0, 2, (ds.n_questions, 3)).astype(np.float32)
    C = rng.integers(0, 2, (ds.n_candidates, 3)).astype(np.float32)
    res = score_lareqa(Q, C, ds)
    assert_matches_reference(res, reference_results(Q @ C.T, ds))
    # Top-k lists follow the same rule (score desc, then candidate index), ties at the cut included.
    S = Q @ C.T
    big = rank_lareqa(Q, C, ds)
    expected = np.stack([np.lexsort((np.arange(ds.n_candidates), -S[i]))[:100] for i in range(ds.n_questions)])
    assert np.array_equal(big.top_idx, expected)
    assert np.array_equal(big.top_scores, np.take_along_axis(S, expected, 1))
    # Block sizes change speed only, never the numbers.
    small = rank_lareqa(Q, C, ds, score_rows=7)
    assert np.array_equal(small.rank_pool, big.rank_pool) and np.array_equal(small.rank_lang, big.rank_lang)
    assert np.array_equal(small.top_idx, big.top_idx)


def test_xquad_subset_matches_reference(shared_data):
    full = load_lareqa(need(shared_data, "lareqa", "xquad-r"), langs=["en", "es", "zh"])
    keep = [i for i, q in enumerate(full.questions) if int(i % 1190) < 60]  # 60 questions per language, all candidates
    ds = LareqaDataset(
        full.name, [full.questions[i] for i in keep], full.candidates, [full.relevant[i] for i in keep], full.languages
    )
    Q, C = _random_embeddings(ds, dim=16, seed=1)
    assert_matches_reference(score_lareqa(Q, C, ds), reference_results(Q @ C.T, ds))


def test_settings_agree_with_pytrec_eval(mlqa_like):
    import pytrec_eval

    _, ds = mlqa_like
    Q, C = _random_embeddings(ds, seed=3)  # continuous scores: no ties, so trec_eval ranks identically
    S = Q @ C.T
    res = score_lareqa(Q, C, ds)
    cids = [c.cid for c in ds.candidates]
    by_lang = {l: [i for i, c in enumerate(ds.candidates) if c.lang == l] for l in ds.languages}

    def trec_mean(queries, cand, measure):
        qrels = {ds.questions[q].key: {cids[c]: 1 for c in ds.relevant[q].tolist() if c in cand} for q in queries}
        run = {ds.questions[q].key: {cids[c]: float(S[q, c]) for c in cand} for q in queries}
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall.1,10"}).evaluate(run)
        return float(np.mean([v[measure] for v in ev.values()]))

    for x in ds.languages:
        qx = [i for i, q in enumerate(ds.questions) if q.lang == x]
        pool = set(range(ds.n_candidates))
        assert res["multi"]["per_language"][x]["map"] == pytest.approx(trec_mean(qx, pool, "map"), abs=1e-9)
        assert res["multi"]["per_language"][x]["recall@10"] == pytest.approx(trec_mean(qx, pool, "recall_10"), abs=1e-9)
        for y in ds.languages:
            cand = set(by_lang[y])
            qxy = [q for q in qx if set(ds.relevant[q].tolist()) & cand]
            if not qxy:
                continue
            got = res["mono"]["per_language"][x] if x == y else res["cross"]["per_pair"][f"{x}->{y}"]
            assert got["map"] == pytest.approx(trec_mean(qxy, cand, "map"), abs=1e-9)
            assert got["recall@1"] == pytest.approx(trec_mean(qxy, cand, "recall_1"), abs=1e-9)


# ---- outputs, cache, public API, CLI -----------------------------------------------------------


def _read_trec(path: Path, n_fields: int) -> list[list[str]]:
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(r) == n_fields for r in rows)
    return rows


def test_outputs_cache_and_overwrite(mlqa_like, tiny_model, tmp_path, monkeypatch):
    import polyret.encode
    import polyret.evaluate

    _, ds = mlqa_like
    out = tmp_path / "out"
    res = evaluate_lareqa(tiny_model, ds, out_dir=out, cache=tmp_path / "cache", show_progress=False)
    for name in ("results.json", "report.md", "cross_map_heatmap.png", "multi.trec", "qrels.trec"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    for key in (
        "dataset",
        "model",
        "n_questions",
        "n_candidates",
        "mono",
        "cross",
        "multi",
        "rank_distance",
        "top10_own_language_share",
        "timing",
    ):
        assert key in saved
    assert set(saved["timing"]) >= {"encode_s", "score_s", "total_s"}
    assert saved["n_questions"] == ds.n_questions and saved["mono"]["map"] == pytest.approx(res["mono"]["map"])
    assert (out / "cross_map_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| **avg** |" in report and "Multi R@10" in report
    # TREC run: top 100 (or the whole pool) per question, best first; qrels: every relevant pair.
    run = _read_trec(out / "multi.trec", 6)
    assert len(run) == ds.n_questions * min(100, ds.n_candidates)
    assert len(_read_trec(out / "qrels.trec", 4)) == sum(len(r) for r in ds.relevant)
    first_q = [r for r in run if r[0] == ds.questions[0].key]
    assert [int(r[3]) for r in first_q] == list(range(1, len(first_q) + 1))
    assert all(float(a[4]) >= float(b[4]) for a, b in zip(first_q, first_q[1:]))
    # The run file gives the same Recall@10 as the results (micro over questions).
    import pytrec_eval

    run_d, qrels_d = {}, {}
    for q, _, d, _, s, _ in run:
        run_d.setdefault(q, {})[d] = float(s)
    for q, _, d, rel in _read_trec(out / "qrels.trec", 4):
        qrels_d.setdefault(q, {})[d] = int(rel)
    ev = pytrec_eval.RelevanceEvaluator(qrels_d, {"recall.10"}).evaluate(run_d)
    ranks = rank_lareqa(*_embed_again(tiny_model, ds, tmp_path / "cache"), ds)
    from polyret.metrics import recall_at_k

    ours = recall_at_k(ranks.rank_pool, 10)
    assert np.mean([ev[q.key]["recall_10"] for q in ds.questions]) == pytest.approx(ours.mean(), abs=1e-9)

    with pytest.raises(PolyretError, match="already holds a finished eval-lareqa output"):
        evaluate_lareqa(tiny_model, ds, out_dir=out, cache=tmp_path / "cache", show_progress=False)

    # Second run: everything comes from the embedding cache (the encoder must not be called).
    def no_encoding(*a, **k):
        raise AssertionError("encoded again despite the cache")

    monkeypatch.setattr(polyret.encode, "_raw_encode", no_encoding)
    again = polyret.evaluate.lareqa(
        tiny_model, mlqa_like[0], out, cache=tmp_path / "cache", show_progress=False, overwrite=True
    )
    for setting in ("mono", "cross", "multi"):
        assert again[setting]["map"] == res[setting]["map"]


def _embed_again(model, ds, cache):
    from polyret.encode import encode_texts

    return (
        encode_texts(model, ds.question_texts(), kind="query", cache=cache, show_progress=False),
        encode_texts(model, ds.candidate_texts(), kind="passage", cache=cache, show_progress=False),
    )


def test_candidate_mode_and_bad_embeddings(mlqa_like):
    _, ds = mlqa_like
    texts = ds.candidate_texts("sentence+context")
    assert texts[0].startswith(ds.candidates[0].sentence + " ") and texts[0].endswith(ds.candidates[0].context)
    with pytest.raises(PolyretError, match="unknown candidate mode"):
        ds.candidate_texts("paragraph")
    Q, C = _random_embeddings(ds)
    with pytest.raises(PolyretError, match="candidate embeddings have shape"):
        score_lareqa(Q, C[:-1], ds)
    C[0, 0] = np.nan
    with pytest.raises(PolyretError, match="NaN"):
        score_lareqa(Q, C, ds)


def test_cli(mlqa_like, tiny_model, tmp_path, monkeypatch, capsys):
    from polyret.cli import main

    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))
    tiny_model.save(str(tmp_path / "tiny" / "st"))
    root, ds = mlqa_like
    out = tmp_path / "cli-out"
    main(
        [
            "eval",
            "lareqa",
            "--model",
            str(tmp_path / "tiny" / "st"),
            "--data",
            str(root),
            "--out",
            str(out),
            "--langs",
            "en,de,zh",
            "--no-progress",
        ]
    )
    res = json.loads((out / "results.json").read_text())
    assert res["languages"] == ["en", "de", "zh"] and len(res["cross"]["per_pair"]) <= 6
    err = capsys.readouterr().err
    assert "Multi" in err and "results.json" in err
    with pytest.raises(SystemExit) as e:
        main(
            [
                "eval",
                "lareqa",
                "--model",
                str(tmp_path / "tiny" / "st"),
                "--data",
                str(root),
                "--out",
                str(tmp_path / "o2"),
                "--langs",
                "en,fr",
            ]
        )
    assert e.value.code == 2
    assert "no file for language(s) fr" in " ".join(capsys.readouterr().err.split())


# ---- the real default model on a small XQuAD-R subset ------------------------------------------


def test_default_model_on_xquad_subset(shared_data, default_model, tmp_path):
    src = need(shared_data, "lareqa", "xquad-r")
    sub = tmp_path / "xquad-r-2art"
    sub.mkdir()
    for lang in ("en", "de"):  # the first two articles of each file
        data = json.loads((src / f"{lang}.json").read_text(encoding="utf-8"))
        data["data"] = data["data"][:2]
        (sub / f"{lang}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    ds = load_lareqa(sub)
    res = evaluate_lareqa(default_model, ds, cache=tmp_path / "cache", show_progress=False)
    # multilingual-e5-small retrieves answer sentences far above chance (chance mAP ~ 1/50 here).
    for lang in ("en", "de"):
        assert res["mono"]["per_language"][lang]["map"] > 0.6
        assert res["cross"]["per_language"][lang]["map"] > 0.5
        assert res["multi"]["per_language"][lang]["recall@10"] > 0.6
    assert 0 <= res["rank_distance"]["mean"] < ds.n_candidates / 4
    assert 0.5 <= res["top10_own_language_share"]["mean"] <= 1.0


def test_benchmark_flop_count_matches_torch_flop_counter(tiny_model):
    """The speed floor in benchmarks/lareqa_eval.py rests on this count: it must equal what torch
    counts for the matmuls of a real forward pass (mixed lengths, padding-free batches of one)."""
    import importlib.util

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    spec = importlib.util.spec_from_file_location(
        "bench_lareqa", Path(__file__).parents[1] / "benchmarks" / "lareqa_eval.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bert = tiny_model[0].auto_model.eval()
    cfg = bert.config
    old_attn = cfg._attn_implementation
    bert.set_attn_implementation("eager")  # explicit QKᵀ / AV matmuls, which the counter sees (SDPA it does not)
    lengths = [3, 7, 12]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        for n in lengths:
            ids = torch.randint(5, cfg.vocab_size, (1, n))
            bert(input_ids=ids, attention_mask=torch.ones_like(ids))
    bert.set_attn_implementation(old_attn)
    pooler = 2 * len(lengths) * cfg.hidden_size * cfg.hidden_size  # BertModel's pooler: not in our count (unused)
    want = counter.get_total_flops() - pooler
    got = bench.encoder_flops(lengths, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size)
    assert got == pytest.approx(want, rel=1e-9)
