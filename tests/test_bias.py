"""`polyret bias`: the language numbers on a hand-worked example, bad corpora, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.correction import fit_model_correction
from polyret.errors import PolyretError
from polyret.evaluate.bias import check_corpus, language_metrics, read_records


def test_language_metrics_hand_worked():
    # Corpus: 3 de, 1 en (shares .75 / .25). Top-2 per query:
    #   q0 (de, target en): de de   q1 (de): de en   q2 (en, target en): en de
    doc_langs = ["de", "de", "de", "en"]
    top = np.array([[0, 1], [2, 3], [3, 0]])
    m = language_metrics(top, doc_langs, ["de", "de", "en"], ["en", None, "en"], ["de", "en"])
    assert m["corpus_share"] == {"de": 0.75, "en": 0.25}
    assert m["distribution"]["de"] == {"de": 0.75, "en": 0.25}  # (2 + 1) / 4 de results
    assert m["distribution"]["en"] == {"de": 0.5, "en": 0.5}
    # own-language preference: de (0.75 - 0.75) / 0.25 = 0; en (0.5 - 0.25) / 0.75 = 1/3
    assert m["own_language_preference"]["de"] == pytest.approx(0.0)
    assert m["own_language_preference"]["en"] == pytest.approx(1 / 3)
    assert m["preference"] == pytest.approx(1 / 6)
    # TLR@2: q0 0/2 in en (de queries: 0.0), q2 1/2 (en queries: 0.5); q1 has no target
    assert m["tlr"] == {"mean": 0.25, "per_language": {"de": 0.0, "en": 0.5}, "n_queries": 2}


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_bad_corpus_gets_one_clear_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(PolyretError, match=r"--corpus .*empty.jsonl: empty"):
        read_records(empty, "corpus")
    no_text = _write(tmp_path / "notext.jsonl", [{"text": "a", "lang": "en"}, {"body": "b", "lang": "de"}])
    with pytest.raises(PolyretError, match=r"notext.jsonl line 2: no 'text' field"):
        read_records(no_text, "corpus")
    no_lang = _write(tmp_path / "nolang.jsonl", [{"text": "a"}])
    with pytest.raises(PolyretError, match=r"nolang.jsonl line 1: no 'lang' field"):
        read_records(no_lang, "corpus")
    one = _write(tmp_path / "one.jsonl", [{"text": "a", "lang": "en"}, {"text": "b", "language": "en"}])
    with pytest.raises(PolyretError, match=r"one.jsonl: all 2 documents are in one language \(en\)"):
        check_corpus(read_records(one, "corpus"))


DOCS = {
    "de": ["Der Hund schläft im Garten.", "Berlin ist die Hauptstadt.", "Das Wetter ist schön.", "Ich lese ein Buch."],
    "en": ["The dog sleeps in the garden.", "Berlin is the capital.", "The weather is nice.", "I am reading a book."],
    "zh": ["狗在花园里睡觉。", "柏林是首都。", "天气很好。", "我在读书。"],
}


def test_cli_writes_before_and_after(tiny_model, tmp_path, monkeypatch, capsys):
    from polyret.cli import main

    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "tiny"
    tiny_model.save(str(model_dir))
    fit_model_correction(tiny_model, "center-both", texts=DOCS, min_texts=3, show_progress=False, cache=False).save(
        model_dir
    )
    docs = _write(tmp_path / "docs.jsonl", [{"text": t, "lang": l} for l, ts in DOCS.items() for t in ts])
    queries = _write(
        tmp_path / "q.jsonl", [{"text": t, "lang": l, "target_lang": "en"} for l, ts in DOCS.items() for t in ts]
    )
    out = tmp_path / "out"
    main(
        [
            "bias",
            "--model",
            str(model_dir),
            "--corpus",
            str(docs),
            "--queries",
            str(queries),
            "--out",
            str(out),
            "--k",
            "3",
            "--no-progress",
        ]
    )
    res = json.loads((out / "results.json").read_text())
    for stage in ("before", "after"):
        m = res[stage]
        for x, dist in m["distribution"].items():
            assert sum(dist.values()) == pytest.approx(1.0)  # every top-3 result has a language
        assert m["corpus_share"] == pytest.approx({"de": 1 / 3, "en": 1 / 3, "zh": 1 / 3})
        assert m["tlr"]["n_queries"] == 12
        assert (out / f"bias_heatmap_{stage}.png").stat().st_size > 1000
    assert "## after" in (out / "report.md").read_text()
    assert "own-language preference" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a single-language corpus: exit 2, one line, before the model loads
        one = _write(tmp_path / "one.jsonl", [{"text": t, "lang": "de"} for t in DOCS["de"]])
        main(
            [
                "bias",
                "--model",
                str(model_dir),
                "--corpus",
                str(one),
                "--queries",
                str(queries),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
    assert e.value.code == 2
    assert "one language (de)" in " ".join(capsys.readouterr().err.split())
