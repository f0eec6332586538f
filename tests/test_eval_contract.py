"""One evaluator contract: lazy exports, the stored correction in XNLI / Tatoeba (values computed by
hand), and `load_result` on result folders in today's and older layouts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import need
from polyret.correction import LanguageCorrection
from polyret.errors import PolyretError
from polyret.evaluate.reader import load_result
from polyret.evaluate.result import EvalResult, PerQuery, save_per_query


def test_importing_polyret_evaluate_is_light_and_exports_every_evaluator():
    code = (
        "import sys, polyret.evaluate as e; heavy = {'torch', 'sklearn', 'sentence_transformers', 'transformers'}; "
        "print(sorted(heavy & set(sys.modules))); print(e.__all__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    for name in (
        "evaluate_lareqa",
        "evaluate_xnli",
        "evaluate_tatoeba",
        "evaluate_beir",
        "evaluate_miracl",
        "EvalResult",
        "load_result",
        "XnliOptions",
    ):
        assert name in out[1]
    import polyret.evaluate as ev

    assert ev.evaluate_tatoeba.__module__ == "polyret.evaluate.tatoeba" and ev.load_result is load_result


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def corrected_model(tmp_path_factory):
    """A tiny model saved with a known center-both correction for en, de and sw."""
    from polyret.model import build_tiny_model, load_model

    d = tmp_path_factory.mktemp("tiny-corrected")
    build_tiny_model(d)
    rng = np.random.default_rng(7)
    means = {lang: (0.3 * rng.normal(size=32)).astype(np.float32) for lang in ("en", "de", "sw")}
    corr = LanguageCorrection(
        "center-both", {l: {"query_mean": m, "passage_mean": m} for l, m in means.items()}, source="test means"
    )
    corr.save(d / "st")
    return load_model(str(d / "st")), means


def test_tatoeba_applies_the_stored_correction(corrected_model, tmp_path):
    from polyret.encode import encode_texts
    from polyret.evaluate import evaluate_tatoeba

    model, means = corrected_model
    other = [f"satz nummer {i} über das thema {i % 5}" for i in range(30)]
    english = [f"sentence {i} on topic {(i * 3) % 7}" for i in range(30)]
    (tmp_path / "tatoeba.deu-eng.deu").write_text("\n".join(other) + "\n", encoding="utf-8")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("\n".join(english) + "\n", encoding="utf-8")

    x = np.asarray(encode_texts(model, other, kind="query", cache=False, show_progress=False), dtype=np.float64)
    e = np.asarray(encode_texts(model, english, kind="query", cache=False, show_progress=False), dtype=np.float64)
    xc, ec = _unit(x - means["de"]), _unit(e - means["en"])  # center-both by hand: subtract, renormalise

    def hits(q, t):
        return (np.argmax(q @ t.T, axis=1) == np.arange(len(q))).astype(float)

    for spec, (q, t) in (("auto", (xc, ec)), ("none", (x, e))):
        res = evaluate_tatoeba(model, tmp_path, ["de"], cache=False, show_progress=False, language_correction=spec)
        pq = res.per_query["accuracy.mean"]
        got = dict(zip(pq.ids.tolist(), pq.values.tolist()))
        want_x2e, want_e2x = hits(q, t), hits(t, q)
        assert [got[f"de|xx_to_en|{i}"] for i in range(30)] == want_x2e.tolist()
        assert [got[f"de|en_to_xx|{i}"] for i in range(30)] == want_e2x.tolist()
        assert res["per_language"]["de"]["xx_to_en"] == pytest.approx(want_x2e.mean())
        assert res["language_correction"]["method"] == ("center-both" if spec == "auto" else "none")
    assert not np.array_equal(hits(xc, ec), hits(x, e))  # the correction changed some neighbours


def test_xnli_probe_applies_the_stored_correction(corrected_model, shared_data, monkeypatch):
    import polyret.evaluate.xnli as xnli_mod
    from polyret.data.xnli import load_english_train, read_xnli_tsv, xnli_file
    from polyret.encode import encode_texts

    xnli = need(shared_data, "xnli")
    need(shared_data, "nli-en", "snli")
    model, means = corrected_model
    seen = []
    real = xnli_mod.pair_features
    monkeypatch.setattr(xnli_mod, "pair_features", lambda u, v: seen.append((u, v)) or real(u, v))
    train = load_english_train("snli:dev", data_dir=shared_data).head(90)
    res = xnli_mod.evaluate_xnli(
        model,
        xnli,
        options=xnli_mod.XnliOptions(
            langs=["sw"], english_train=train, max_rows=20, n_bootstrap=20, Cs=(1.0,), rows="all"
        ),
        cache=False,
        show_progress=False,
    )
    assert res["language_correction"]["method"] == "center-both" and res["protocol"]["rows"] == "all"
    sw = read_xnli_tsv(xnli_file(xnli, "dev", "sw")).head(20)
    u, v = seen[-1]  # train (en), selection (en dev), then sw
    for got, texts in ((u, sw.premises), (v, sw.hypotheses)):
        raw = np.asarray(encode_texts(model, texts, kind="query", cache=False, show_progress=False), dtype=np.float64)
        np.testing.assert_allclose(got, _unit(raw - means["sw"]), atol=1e-5)
    en_u = seen[0][0]
    raw = np.asarray(
        encode_texts(model, train.premises, kind="query", cache=False, show_progress=False), dtype=np.float64
    )
    np.testing.assert_allclose(en_u, _unit(raw - means["en"]), atol=1e-5)
    with pytest.raises(PolyretError, match="fine-tune"):
        xnli_mod.evaluate_xnli(
            model,
            xnli,
            langs=["sw"],
            english_train=train,
            fine_tune=True,
            language_correction="center-both",
            show_progress=False,
        )


def test_load_result_reads_today_and_older_layouts(tmp_path):
    # today: EvalResult.save, read back whole
    pq = PerQuery.build(["en|0", "de|0"], [1.0, 0.0], ["en", "de"])
    res = EvalResult(
        "toy",
        {"acc": 0.5, "acc[en]": 1.0, "acc[de]": 0.0},
        ["acc"],
        {"Toy": ["acc"]},
        {"acc": pq},
        {"task": "toy", "per_language": {"en": {"acc": 1.0}, "de": {"acc": 0.0}}},
        "# toy\n",
    )
    res.save(tmp_path / "new")
    back = load_result(tmp_path / "new" / "results.json")
    assert (back.metrics, back.headline, back.per_language, back.report) == (
        res.metrics,
        ["acc"],
        {"Toy": ["acc"]},
        "# toy\n",
    )
    assert back.per_query["acc"].ids.tolist() == ["en|0", "de|0"] and back.raw["per_language"]["de"] == {"acc": 0.0}
    assert back.language_values() == {"en": {"acc": 1.0}, "de": {"acc": 0.0}}

    # an older XNLI folder: per-language dict under "languages", per-row values inside results.json
    old = tmp_path / "old-xnli"
    old.mkdir()
    langs = {
        l: {"n": 2, "accuracy": a, "macro_f1": f, "correct": c, "rows": [0, 1]}
        for l, a, f, c in (("en", 1.0, 1.0, [1, 1]), ("sw", 0.5, 0.25, [1, 0]))
    }
    (old / "results.json").write_text(
        json.dumps(
            {
                "task": "xnli",
                "languages": langs,
                "premise_of_row": [0, 0],
                "mean": {"accuracy": 0.75, "macro_f1": 0.625},
                "mean_non_english": {"accuracy": 0.5, "macro_f1": 0.25},
                "low_resource": {"languages": ["sw"], "accuracy": 0.5, "macro_f1": 0.25, "per_language": {"sw": {}}},
            }
        )
    )
    x = load_result(old)
    assert (
        x.metrics["accuracy[sw]"] == 0.5 and x.metrics["accuracy"] == 0.75 and x.metrics["low_resource.accuracy"] == 0.5
    )
    assert x.raw["languages"] == ["en", "sw"] and x.raw["per_language"]["sw"]["accuracy"] == 0.5
    assert x.per_query["accuracy"].macro_mean() == pytest.approx(0.75)

    # an older BEIR folder: "per_lang" and per_query.jsonl
    beir = tmp_path / "old-beir"
    beir.mkdir()
    m = {"ndcg@10": 0.5, "recall@100": 1.0, "mrr@10": 0.5, "map@100": 0.5}
    (beir / "results.json").write_text(
        json.dumps({"task": "beir", "metrics": m, "per_lang": {"de": m | {"n_queries": 2}}})
    )
    (beir / "per_query.jsonl").write_text(
        "".join(json.dumps({"qid": q, "lang": "de", **m, "ndcg@10": v}) + "\n" for q, v in (("q1", 1.0), ("q2", 0.0)))
    )
    b = load_result(beir)
    assert b.metrics["ndcg@10[de]"] == 0.5 and b.raw["per_language"]["de"]["n_queries"] == 2
    assert b.per_query["ndcg@10"].values.tolist() == [1.0, 0.0]

    # an older experiment suite folder: the runner's marker holds the summary, per_query.npz beside it
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "polyret_suite.json").write_text(
        json.dumps(
            {
                "suite": "toy",
                "task": "toy",
                "metrics": {"acc": 0.5},
                "headline": ["acc"],
                "per_language": {"Toy": ["acc"]},
            }
        )
    )
    save_per_query(suite / "per_query.npz", {"acc": pq})
    (suite / "results.json").write_text(json.dumps({"task": "toy", "languages": {"en": {"acc": 1.0}}}))
    s = load_result(suite)
    assert s.metrics == {"acc": 0.5} and s.per_language == {"Toy": ["acc"]} and s.per_query["acc"].macro_mean() == 0.5
    assert s.raw["per_language"] == {"en": {"acc": 1.0}} and load_result(suite, raw=False).raw == {}
    with pytest.raises(PolyretError, match="holds no evaluation result"):
        load_result(tmp_path / "nothing-here")
