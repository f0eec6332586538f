"""Language-bias correction: what each method must leave unchanged, what it must change, storage,
bad input. Synthetic embeddings with a planted language offset make every property checkable."""

from __future__ import annotations

import numpy as np
import pytest

from polyret.correction import (
    LanguageCorrection,
    fit_correction,
    infer_languages,
    procrustes,
    stored_correction,
)
from polyret.data.lareqa import LareqaDataset
from polyret.data.groups import ParallelGroup
from polyret.errors import PolyretError
from polyret.evaluate.lareqa_eval import score_lareqa

LANGS = ("de", "en", "zh")
D = 32


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def biased_pool(n_groups=60, offset=1.2, seed=0):
    """Parallel groups whose embeddings are a shared meaning + a strong per-language offset, so the
    multilingual pool is dominated by language (the bias the correction removes)."""
    rng = np.random.default_rng(seed)
    meaning = _unit(rng.normal(size=(n_groups, D)))
    lang_off = {l: offset * _unit(rng.normal(size=D)) for l in LANGS}
    groups = [
        ParallelGroup(f"g{i}", {l: f"q{i}-{l}" for l in LANGS}, {l: f"p{i}-{l}" for l in LANGS})
        for i in range(n_groups)
    ]
    pool = LareqaDataset.from_groups(groups, name="synthetic")

    def vec(text, kind):
        i, lang = text[1:].split("-")
        noise = rng.normal(scale=0.5 / np.sqrt(D), size=D)
        return _unit(meaning[int(i)] + lang_off[lang] + noise + (0.3 if kind == "query" else 0.0))

    q = np.stack([vec(q.text, "query") for q in pool.questions]).astype(np.float32)
    c = np.stack([vec(c.sentence, "passage") for c in pool.candidates]).astype(np.float32)
    return pool, q, c


def _by_lang(pool, q, c):
    ql = np.array([x.lang for x in pool.questions])
    cl = np.array([x.lang for x in pool.candidates])
    return {l: q[ql == l] for l in LANGS}, {l: c[cl == l] for l in LANGS}, ql, cl


def _apply(corr, pool, q, c):
    _, _, ql, cl = _by_lang(pool, q, c)
    return corr.apply(q, ql, "query"), corr.apply(c, cl, "passage")


def _summary(r):
    return r["mono"]["map"], r["cross"]["map"], r["multi"]["map"], r["rank_distance"]["mean"]


def test_center_keeps_every_in_language_ranking_and_reduces_bias():
    pool, q, c = biased_pool()
    Q, P, _, _ = _by_lang(pool, q, c)
    base = score_lareqa(q, c, pool)
    q2, c2 = _apply(fit_correction(Q, P, "center"), pool, q, c)
    assert np.array_equal(q2, q)  # queries untouched
    fixed = score_lareqa(q2, c2, pool)
    # Mono and Cross are rankings inside one candidate language: identical by construction.
    assert fixed["mono"]["map"] == pytest.approx(base["mono"]["map"], abs=1e-9)
    assert fixed["cross"]["map"] == pytest.approx(base["cross"]["map"], abs=1e-9)
    assert fixed["multi"]["map"] > base["multi"]["map"] + 0.05
    assert fixed["rank_distance"]["mean"] < 0.7 * base["rank_distance"]["mean"]


def test_rotate_keeps_mono_exactly_and_procrustes_recovers_a_planted_rotation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, D)).astype(np.float32)
    w, _ = np.linalg.qr(rng.normal(size=(D, D)))
    assert np.allclose(procrustes(x, x @ w), w, atol=1e-4)

    pool, q, c = biased_pool(seed=1)
    Q, P, ql, cl = _by_lang(pool, q, c)
    par = {l: (P[l], P["en"]) for l in LANGS}
    centred = fit_correction(Q, P, "center")
    rotated = fit_correction(Q, P, "rotate", parallel=par)
    qa, ca = _apply(centred, pool, q, c)
    qb, cb = _apply(rotated, pool, q, c)
    for lang in LANGS:  # inner products inside one language are those of `center`
        assert np.allclose(qa[ql == lang] @ ca[cl == lang].T, qb[ql == lang] @ cb[cl == lang].T, atol=1e-5)
    assert score_lareqa(qb, cb, pool)["mono"]["map"] == pytest.approx(score_lareqa(q, c, pool)["mono"]["map"], abs=1e-6)


def test_methods_that_renormalise_return_unit_vectors_and_lir_removes_its_directions():
    pool, q, c = biased_pool(seed=2)
    Q, P, ql, cl = _by_lang(pool, q, c)
    par = {l: (P[l], P["en"]) for l in LANGS}
    for method in ("center-both", "lir", "procrustes"):
        q2, c2 = _apply(fit_correction(Q, P, method, parallel=par, n_directions=2), pool, q, c)
        assert np.allclose(np.linalg.norm(q2, axis=1), 1, atol=1e-5)
        assert np.allclose(np.linalg.norm(c2, axis=1), 1, atol=1e-5)
    lir = fit_correction(Q, P, "lir", n_directions=2)
    q2 = lir.apply(q, ql, "query")
    for lang in LANGS:
        d = lir.stats[lang]["directions"]
        centred = q[ql == lang] - lir.stats[lang]["query_mean"]
        assert np.abs(q2[ql == lang] @ d.T).max() < 1e-5  # nothing left along the removed directions
        assert not np.allclose(centred @ d.T, 0)


def test_save_load_round_trip_and_model_mismatch(tmp_path):
    pool, q, c = biased_pool()
    Q, P, ql, cl = _by_lang(pool, q, c)
    corr = fit_correction(
        Q, P, "procrustes", parallel={l: (P[l], P["en"]) for l in LANGS}, model_id="abc", source="synthetic"
    )
    assert stored_correction(tmp_path) is None
    corr.save(tmp_path)
    assert stored_correction(tmp_path) is not None
    back = LanguageCorrection.load(tmp_path, model_id="abc")
    assert back.method == "procrustes" and back.languages == list(LANGS)
    assert np.array_equal(back.apply(q, ql, "query"), corr.apply(q, ql, "query"))
    with pytest.raises(PolyretError, match="fitted for model abc"):
        LanguageCorrection.load(tmp_path, model_id="other")
    with pytest.raises(PolyretError, match="no language correction stored"):
        LanguageCorrection.load(tmp_path / "nowhere")
    # the same statistics under another method; a method whose arrays are missing is refused
    assert back.with_method("center").method == "center"
    with pytest.raises(PolyretError, match="needs 'directions'"):
        back.with_method("lir")


def test_unknown_language_and_too_little_text():
    pool, q, c = biased_pool()
    Q, P, ql, cl = _by_lang(pool, q, c)
    corr = fit_correction(Q, P, "center", source="synthetic stats")
    with pytest.raises(PolyretError, match="of model tiny \\(synthetic stats\\) has no statistics for language 'fr'"):
        corr.apply(c[:3], "fr", "passage", model_name="tiny")
    with pytest.raises(PolyretError, match="unknown language correction"):
        fit_correction(Q, P, "centre")
    few = {**P, "sw": P["de"][:5]}
    with pytest.warns(UserWarning, match=r"1 language\(s\) with fewer than 20 texts left uncorrected: sw"):
        corr2 = fit_correction({**Q, "sw": Q["de"][:5]}, few, "center")
    assert corr2.uncorrected == ["sw"]
    assert np.array_equal(corr2.apply(c[:4], "sw", "passage"), c[:4])  # left as it is
    with pytest.raises(PolyretError, match="needs parallel text between 'zh'"):
        fit_correction(Q, P, "rotate", parallel={"de": (P["de"], P["en"])})


def test_infer_languages_from_the_language_means():
    pool, q, c = biased_pool(offset=2.0)
    Q, P, ql, cl = _by_lang(pool, q, c)
    corr = fit_correction(Q, P, "center")
    guessed = np.array(infer_languages(c, corr, "passage"))
    assert (guessed == cl).mean() > 0.95


def test_beir_streaming_applies_a_correction_with_inferred_passage_languages(tmp_path):
    from polyret.correction import infer_languages
    from polyret.data.beir import write_beir
    from polyret.evaluate.beir import evaluate_beir
    from retrieval_fakes import DIM, TopicEncoder, synthetic_beir

    docs, queries, qrels = synthetic_beir(n_docs=400, n_queries=60)
    lang_of = {d.text: d.lang for d in docs} | {q.text: q.lang for q in queries}
    offsets = {l: 0.9 * _unit(np.random.default_rng(i).normal(size=DIM)) for i, l in enumerate(("en", "de", "sw"))}
    topic = TopicEncoder(noise=0.9)

    def biased(texts):  # the topic encoder plus a strong per-language offset: a language-biased model
        return _unit(topic(texts) + np.stack([offsets[lang_of[t]] for t in texts])).astype(np.float32)

    from polyret.evaluate.retrieval import Encoders

    enc = Encoders(biased, biased, "biased-topic-encoder", "biased")
    d_emb, q_emb = biased([d.text for d in docs]), biased([q.text for q in queries])
    corr = fit_correction(
        {l: q_emb[[q.lang == l for q in queries]] for l in ("en", "de", "sw")},
        {l: d_emb[[d.lang == l for d in docs]] for l in ("en", "de")}
        | {"sw": q_emb[[q.lang == "sw" for q in queries]]},
        "center-both",
    )
    root = write_beir(tmp_path / "beir", docs, queries, qrels)
    raw = evaluate_beir(None, root, encoders=enc, map_depth=100, show_progress=False, language_correction="none")
    fixed = evaluate_beir(
        None, root, out_dir=tmp_path / "out", encoders=enc, map_depth=100, show_progress=False, language_correction=corr
    )
    info = fixed["language_correction"]
    assert info["method"] == "center-both" and info["query_languages"] == "metadata"
    assert info["passage_languages"].startswith("inferred")
    assert raw["language_correction"] == {"method": "none"}
    assert fixed["metrics"]["ndcg@10"] > raw["metrics"]["ndcg@10"] + 0.02
    # The run is exactly the ranking of the corrected vectors (passage languages inferred, here exactly).
    assert infer_languages(d_emb, corr, "passage") == [d.lang for d in docs]
    dc = corr.apply(d_emb, [d.lang for d in docs], "passage")
    qc = corr.apply(q_emb, [q.lang for q in queries], "query")
    top = np.argsort(-(qc @ dc.T), axis=1, kind="stable")[:, :10]
    run = {}
    for line in (tmp_path / "out" / "run.trec").read_text().splitlines():
        qid, _, did, rank, *_ = line.split()
        if int(rank) <= 10:
            run.setdefault(qid, []).append(did)
    for i, q in enumerate(queries):
        assert run[q.id] == [docs[j].id for j in top[i]]


def test_cli_fit_show_and_evaluation_applies_the_stored_correction(tiny_model, tmp_path, capsys):
    import json

    from polyret.cli import main
    from polyret.evaluate.lareqa_eval import evaluate_lareqa
    from polyret.model import load_model
    from train_helpers import synthetic_groups

    model_dir = tmp_path / "m"
    tiny_model.save(str(model_dir))
    groups = synthetic_groups(40, seed=3)
    files = []
    for lang in ("de", "es", "zh"):
        f = tmp_path / f"{lang}.txt"
        f.write_text(
            "\n".join(t for g in groups for t in (g.queries[lang], g.positives[lang])) + "\n", encoding="utf-8"
        )
        files += ["--texts", f"{lang}={f}"]
    main(["correction", "fit", "--model", str(model_dir), "--method", "center", "--parallel", "none", *files])
    capsys.readouterr()
    main(["correction", "show", "--model", str(model_dir)])
    meta = json.loads(capsys.readouterr().out)
    assert meta["method"] == "center" and meta["languages"] == ["de", "es", "zh"]
    assert meta["n_texts"]["de"] == {"query": 80, "passage": 80}
    with pytest.raises(SystemExit) as e:  # never replaced without --overwrite
        main(["correction", "fit", "--model", str(model_dir), "--parallel", "none", *files])
    assert e.value.code == 2 and "exists; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["correction", "fit", "--model", str(model_dir), "--method", "centre", "--parallel", "none", *files])
    assert e.value.code == 2 and "unknown language correction 'centre'" in capsys.readouterr().err
    pool = LareqaDataset.from_groups(synthetic_groups(15, seed=8), name="synthetic")
    model = load_model(str(model_dir))
    res = evaluate_lareqa(model, pool, cache=False, show_progress=False)  # auto: the stored statistics
    raw = evaluate_lareqa(model, pool, cache=False, show_progress=False, language_correction="none")
    assert (
        res["language_correction"]["method"] == "center"
        and "stored with the model" in res["language_correction"]["statistics"]
    )
    assert raw["language_correction"]["method"] == "none"
    assert res["mono"]["map"] == pytest.approx(raw["mono"]["map"], abs=1e-9)  # center keeps in-language rankings
    # The value, by hand: `center` subtracts each passage's language mean read straight from the stored
    # stats.npz (queries unchanged, no renormalisation); the pool scored on those vectors must give the
    # evaluator's corrected numbers exactly, and they must differ from the raw ones.
    from polyret.encode import encode_texts

    stats = np.load(model_dir / "language_correction" / "stats.npz")
    q = encode_texts(model, [x.text for x in pool.questions], "query", show_progress=False)
    c = encode_texts(model, [x.sentence for x in pool.candidates], "passage", show_progress=False)
    c_hand = np.stack([v - stats[f"{x.lang}/passage_mean"] for v, x in zip(c, pool.candidates)])
    hand = score_lareqa(q, c_hand, pool)
    for setting in ("mono", "cross", "multi"):
        assert res[setting]["map"] == pytest.approx(hand[setting]["map"], abs=1e-6), setting
    assert res["rank_distance"]["mean"] == pytest.approx(hand["rank_distance"]["mean"], abs=1e-6)
    assert abs(hand["multi"]["map"] - raw["multi"]["map"]) > 1e-4
