"""MTEB runs a polyret model with its correction: mteb's own retrieval evaluation on a local
XQuADRetrieval-shaped task equals polyret's nDCG@10, with and without the correction; polyret's
LAReQA results load back as an MTEB TaskResult."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import mteb  # noqa: E402,F401  (a dev dependency: the suite fails, not skips, without it)

from polyret.correction import fit_model_correction  # noqa: E402
from polyret.correction_st import align_document_prompt, install_correction_module  # noqa: E402
from polyret.evaluate.mteb_bridge import (
    lareqa_task_result,
    ndcg_at_10,
    xquad_ndcg10,
    xquad_retrieval_task,
    xquad_subsets,
)  # noqa: E402
from polyret.model import load_model  # noqa: E402
from conftest import need  # noqa: E402

LANGS = ["de", "ru", "zh"]  # ru: contexts with trailing whitespace, which mteb strips


def test_ndcg_at_10_hand_worked():
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.3], [0.5, 0.5, 0.4]])
    got = ndcg_at_10(scores, np.array([0, 2, 1]))
    # ranks 1, 2, and 1 (a tie counts in the query's favour)
    assert got.tolist() == pytest.approx([1.0, 1 / math.log2(3), 1.0])


def test_ndcg_at_10_breaks_ties_like_pytrec_eval():
    import pytrec_eval

    # query 0: relevant "p1" ties with "p2" and "p0"; pytrec_eval orders ties by id descending: p2, p1, p0
    # -> rank 2. query 1: relevant "p2" ties with "p1" -> rank 1. query 2: relevant "p0" ties with all -> rank 3.
    scores = np.array([[0.5, 0.5, 0.5], [0.1, 0.7, 0.7], [0.25, 0.25, 0.25]])
    ids = ["p0", "p1", "p2"]
    got = ndcg_at_10(scores, np.array([1, 2, 0]), ids)
    assert got.tolist() == pytest.approx([1 / math.log2(3), 1.0, 0.5])
    qrels = {"q0": {"p1": 1}, "q1": {"p2": 1}, "q2": {"p0": 1}}
    run = {f"q{i}": {d: float(scores[i, j]) for j, d in enumerate(ids)} for i in range(3)}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert got.tolist() == pytest.approx([ref[f"q{i}"]["ndcg_cut_10"] for i in range(3)])


def test_mteb_encodes_the_texts_polyret_encodes(shared_data, tiny_model):
    """mteb strips every document text before encoding; XQuAD-R's Russian contexts end in a space (one
    more token), which moved near-tied paragraphs. The task's corpus must already be stripped."""

    task = xquad_retrieval_task(need(shared_data, "lareqa", "xquad-r"), ["ru"], max_paragraphs=2)
    assert any(c.context != c.context.strip() for c in task.polyret_dataset.candidates)  # the case this guards
    subset = xquad_subsets(task.polyret_dataset)["ru"]
    encoded: list[str] = []
    encode = tiny_model.encode

    def recording_encode(*args, **kwargs):
        texts = kwargs.get("inputs", args[0] if args else None)
        encoded.extend([texts] if isinstance(texts, str) else list(texts))
        return encode(*args, **kwargs)

    tiny_model.encode = recording_encode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mteb.evaluate(tiny_model, tasks=[task], cache=None, overwrite_strategy="always", show_progress_bar=False)
    finally:
        del tiny_model.encode
    assert sorted(encoded) == sorted(list(subset["queries"].values()) + list(subset["corpus"].values()))


def _mteb_scores(model, task) -> dict[str, float]:
    import mteb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mteb.evaluate(model, tasks=[task], cache=None, overwrite_strategy="always", show_progress_bar=False)
    return {s["hf_subset"]: s["ndcg_at_10"] for s in res.task_results[0].scores["validation"]}


def test_mteb_ndcg_equals_polyret_with_and_without_correction(shared_data, tiny_model, tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dmu
    from sentence_transformers import SentenceTransformer

    task = xquad_retrieval_task(need(shared_data, "lareqa", "xquad-r"), LANGS, max_paragraphs=3)
    ds = task.polyret_dataset
    raw_dir = tmp_path / "raw"
    tiny_model.save(str(raw_dir))
    align_document_prompt(raw_dir)  # encode_document with the passage prompt, as polyret encodes passages
    corr_dir = tmp_path / "corrected"
    tiny_model.save(str(corr_dir))
    texts = {
        l: [q.text for q in ds.questions if q.lang == l] + [c.context for c in ds.candidates if c.lang == l]
        for l in LANGS
    }
    fit_model_correction(tiny_model, "center-both", texts=texts, min_texts=3, show_progress=False, cache=False).save(
        corr_dir
    )
    install_correction_module(corr_dir)

    raw_model = load_model(str(raw_dir), device="cpu")
    mteb_raw = _mteb_scores(raw_model, task)
    ours_raw = xquad_ndcg10(raw_model, ds, cache=False)
    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    plain = SentenceTransformer(str(corr_dir), device="cpu", trust_remote_code=True)
    mteb_corr = _mteb_scores(plain, task)
    # mteb passes no language: the module infers it, so polyret infers it too for the comparison.
    ours_corr = xquad_ndcg10(
        load_model(str(corr_dir), device="cpu"), ds, language_correction="auto", infer=True, cache=False
    )
    for lang in LANGS:
        assert mteb_raw[lang] == pytest.approx(ours_raw[lang], abs=1e-4), lang
        assert mteb_corr[lang] == pytest.approx(ours_corr[lang], abs=1e-4), lang
    assert any(abs(ours_corr[l] - ours_raw[l]) > 1e-3 for l in LANGS)  # the correction changed the numbers


def test_lareqa_results_as_mteb_task_result(tmp_path):
    from mteb.results import TaskResult

    langs = ["de", "en"]
    results = {
        "dataset": "xquad-r",
        "languages": langs,
        "multi": {"per_language": {"de": {"map": 0.5}, "en": {"map": 0.625}}},
        "mono": {"per_language": {"de": {"map": 0.75}, "en": {"map": 0.875}}},
        "cross": {"per_language": {"de": {"map": 0.25}, "en": {"map": 0.375}}},
        "rank_distance": {"per_language": {"de": 12.0, "en": 8.0}},
    }
    tr = lareqa_task_result(results, evaluation_time=3.0)
    path = tmp_path / "PolyretLAReQA-xquad-r.json"
    tr.to_disk(path)
    back = TaskResult.from_disk(path)
    by_lang = {s["hf_subset"]: s for s in back.scores["test"]}
    assert by_lang["en"]["main_score"] == 0.625 and by_lang["de"]["rank_distance"] == 12.0
    assert by_lang["de"]["languages"] == ["deu-Latn"]
    assert back.get_score() == pytest.approx((0.5 + 0.625) / 2)
