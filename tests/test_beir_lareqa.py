"""BEIR path vs LAReQA path: an exported LAReQA setting evaluated by `eval beir` gives LAReQA's mAP.

Both paths must see the same vectors for the comparison to be about the metric, not about float
noise between two batchings of the encoder: `eval lareqa` stores its vectors in the polyret encode
cache (its default) and `eval beir --cache` reads them from there. What is then checked is the whole
BEIR route: export (ids, languages, relevance), streaming store, full-ranking run, tie-breaking
(earlier candidate first in both) and pytrec_eval's AP against LAReQA's counting-based AP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import need
from polyret.cli import main
from polyret.data.beir import export_lareqa_beir, iter_corpus, load_beir
from polyret.data.lareqa import load_lareqa, write_lareqa_file
from polyret.errors import PolyretError
from polyret.evaluate.beir import evaluate_beir

LANGS = ("de", "el", "th")
N_ARTICLES = 4  # of 48: ~100 questions and ~120 candidates per language keeps the test fast


def _xquad_subset(shared_data: Path, out: Path) -> Path:
    out.mkdir()
    for lang in LANGS:
        raw = json.loads(need(shared_data, "lareqa", "xquad-r", f"{lang}.json").read_text(encoding="utf-8"))
        write_lareqa_file(out / f"{lang}.json", raw["data"][:N_ARTICLES])
    return out


@pytest.fixture()
def subset(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))  # both paths share a fresh cache
    return _xquad_subset(shared_data, tmp_path / "xquad-r-subset")


def test_export_multi_matches_the_dataset(subset, tmp_path):
    ds = load_lareqa(subset)
    info = export_lareqa_beir(subset, "multi", tmp_path / "beir")
    split = load_beir(tmp_path / "beir")
    docs = list(iter_corpus(split.corpus_path))
    assert [d.id for d in docs] == [c.cid for c in ds.candidates]  # corpus order = LAReQA candidate order
    assert [d.text for d in docs] == [c.sentence for c in ds.candidates]
    assert {d.lang for d in docs} == set(LANGS)
    assert list(split.queries) == [q.key for q in ds.questions] and info["n_queries"] == ds.n_questions
    assert all(len(r) == len(LANGS) for r in split.qrels.values())  # XQuAD-R: one answer per language
    assert split.qrels[ds.questions[0].key] == {ds.candidates[int(i)].cid: 1 for i in ds.relevant[0]}
    with pytest.raises(PolyretError, match="not one of multi"):
        export_lareqa_beir(subset, "cross:de", tmp_path / "x")


def test_eval_beir_map_equals_eval_lareqa_multi_map(subset, tmp_path, tiny_model):
    model_dir = tiny_model[0].auto_model.name_or_path  # the fixture's saved sentence-transformers directory
    assert Path(model_dir).is_dir()
    main(
        [
            "eval",
            "lareqa",
            "--model",
            model_dir,
            "--data",
            str(subset),
            "--out",
            str(tmp_path / "lareqa"),
            "--no-progress",
            "--language-correction",
            "none",
        ]
    )  # eval beir streams, so it has no pool statistics to correct with
    main(
        [
            "data",
            "export-beir",
            "--dataset",
            "lareqa",
            "--data",
            str(subset),
            "--setting",
            "multi",
            "--out",
            str(tmp_path / "beir"),
        ]
    )
    main(
        [
            "eval",
            "beir",
            "--model",
            model_dir,
            "--data",
            str(tmp_path / "beir"),
            "--out",
            str(tmp_path / "out"),
            "--map-depth",
            "all",
            "--cache",
            "--no-progress",
        ]
    )
    lareqa = json.loads((tmp_path / "lareqa" / "results.json").read_text())
    beir = json.loads((tmp_path / "out" / "results.json").read_text())
    assert beir["map_depth"] == "all" and beir["n_docs"] == lareqa["n_candidates"]
    # LAReQA's Multi mAP is the macro mean over query languages; XQuAD-R has the same questions in
    # every language, so it equals BEIR's mean over all queries.
    assert beir["metrics"]["map"] == pytest.approx(lareqa["multi"]["map"], abs=1e-6)
    for lang in LANGS:
        assert beir["per_language"][lang]["map"] == pytest.approx(
            lareqa["multi"]["per_language"][lang]["map"], abs=1e-6
        )
    assert 0 < beir["metrics"]["map"] < 1

    # Mono and Cross slices of the same embeddings (cache hits) match too.
    model = tiny_model
    for setting, expected in (
        ("mono:el", lareqa["mono"]["per_language"]["el"]["map"]),
        ("cross:th-de", lareqa["cross"]["per_pair"]["th->de"]["map"]),
    ):
        out = tmp_path / setting.replace(":", "_")
        export_lareqa_beir(subset, setting, out)
        res = evaluate_beir(model, out, map_depth=None, cache=True, show_progress=False)
        assert res["metrics"]["map"] == pytest.approx(expected, abs=1e-6), setting
