"""A corrected model outside polyret: a FAISS index built from plain `SentenceTransformer(dir)`
embeddings gives polyret's LAReQA Multi mAP, and the sentence-transformers evaluator gives
`evaluate_lareqa`'s numbers. Tiny model, a known correction, an MLQA-R-shaped fixture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from polyret.correction import fit_model_correction
from polyret.correction_st import install_correction_module
from polyret.data.lareqa import load_lareqa
from polyret.evaluate.lareqa_eval import evaluate_lareqa
from polyret.model import load_model
from test_lareqa_fixture import build_mlqa_like


@pytest.fixture(scope="module")
def corrected(tiny_model, tmp_path_factory):
    """(model dir with the correction in its pipeline, the dataset, polyret's corrected results)."""
    root = tmp_path_factory.mktemp("roundtrip")
    build_mlqa_like(root / "mlqa-r", n_questions=60, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_lareqa(root / "mlqa-r")
    texts: dict[str, list[str]] = {}
    for q in ds.questions:
        texts.setdefault(q.lang, []).append(q.text)
    for c in ds.candidates:
        texts.setdefault(c.lang, []).append(c.sentence)
    model_dir = root / "tiny-corrected"
    tiny_model.save(str(model_dir))
    corr = fit_model_correction(tiny_model, "center-both", texts=texts, min_texts=3, show_progress=False, cache=False)
    corr.save(model_dir)
    install_correction_module(model_dir)
    model = load_model(str(model_dir), device="cpu")
    ours = evaluate_lareqa(model, ds, cache=False, show_progress=False, language_correction="auto")
    plain = evaluate_lareqa(model, ds, cache=False, show_progress=False, language_correction="none")
    return model_dir, ds, ours, plain


@pytest.fixture(scope="module")
def plain_st(corrected, tmp_path_factory):
    """`SentenceTransformer(dir, trust_remote_code=True)`: the class comes from the directory's file."""
    import transformers.dynamic_module_utils as dmu
    from sentence_transformers import SentenceTransformer

    model_dir = corrected[0]
    mp = pytest.MonkeyPatch()
    mp.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf-modules")))  # keep ~/.cache clean
    try:
        model = SentenceTransformer(str(model_dir), device="cpu", trust_remote_code=True)
    finally:
        mp.undo()
    assert type(model[-1]).__name__ == "LanguageCorrectionModule"
    return model


def _by_language(model, ds, encode, items, lang_of, text_of):
    """Encode each language's texts in one call with language=..., rows back in dataset order."""
    out = None
    for lang in ds.languages:
        rows = [i for i, x in enumerate(items) if lang_of(x) == lang]
        if not rows:
            continue
        emb = encode([text_of(items[i]) for i in rows], language=lang, batch_size=16)
        out = np.zeros((len(items), emb.shape[1]), np.float32) if out is None else out
        out[rows] = emb
    return out


def _multi_map_from_faiss(q_emb, c_emb, ds) -> float:
    """Multi mAP computed here from a FAISS flat inner-product index: AP over each question's full
    ranking of the pool, averaged per question language, then over languages."""
    import faiss

    index = faiss.IndexFlatIP(c_emb.shape[1])
    index.add(np.ascontiguousarray(c_emb, dtype=np.float32))
    _, order = index.search(np.ascontiguousarray(q_emb, dtype=np.float32), c_emb.shape[0])
    per_lang: dict[str, list[float]] = {}
    for qi, q in enumerate(ds.questions):
        relevant = set(ds.relevant[qi].tolist())
        hit_ranks = [r + 1 for r, c in enumerate(order[qi].tolist()) if c in relevant]
        ap = float(np.mean([(k + 1) / rank for k, rank in enumerate(hit_ranks)]))
        per_lang.setdefault(q.lang, []).append(ap)
    return float(np.mean([np.mean(v) for v in per_lang.values()]))


def test_faiss_round_trip_gives_polyret_multi_map(corrected, plain_st):
    _, ds, ours, uncorrected = corrected
    q = _by_language(plain_st, ds, plain_st.encode_query, ds.questions, lambda x: x.lang, lambda x: x.text)
    c = _by_language(plain_st, ds, plain_st.encode_document, ds.candidates, lambda x: x.lang, lambda x: x.sentence)
    faiss_map = _multi_map_from_faiss(q, c, ds)
    assert faiss_map == pytest.approx(ours.metrics["multi.map"], abs=1e-4)
    # The correction moved the number, so agreeing with the corrected one is not agreeing with both.
    assert abs(ours.metrics["multi.map"] - uncorrected.metrics["multi.map"]) > 1e-3


def test_sentence_evaluator_gives_polyret_numbers(corrected, plain_st, tmp_path):
    from polyret.evaluate.st_evaluator import LareqaEvaluator

    model_dir, ds, ours, uncorrected = corrected
    ev = LareqaEvaluator(ds, name="mlqa", primary_metric="multi_map", language_correction="auto")
    got = ev(load_model(str(model_dir), device="cpu"), output_path=str(tmp_path), epoch=1, steps=5)
    for key, src in (
        ("multi_map", "multi.map"),
        ("mono_map", "mono.map"),
        ("cross_map", "cross.map"),
        ("rank_distance", "rank_distance"),
    ):
        assert got[f"mlqa_{key}"] == pytest.approx(ours.metrics[src], abs=1e-6), key
    assert ev.primary_metric == "mlqa_multi_map" and ev.greater_is_better
    assert (tmp_path / "lareqa_evaluation_mlqa_results.csv").read_text().count("\n") == 2
    # A plain SentenceTransformer whose pipeline ends with the module: evaluated with its correction
    # (languages from the dataset), and the module is back in place afterwards.
    got_plain = LareqaEvaluator(ds, name="x", primary_metric="rank_distance")(plain_st)
    assert got_plain["x_multi_map"] == pytest.approx(ours.metrics["multi.map"], abs=1e-4)
    assert got_plain["x_rank_distance"] == pytest.approx(ours.metrics["rank_distance"], rel=1e-3)
    assert type(plain_st[-1]).__name__ == "LanguageCorrectionModule"
    # Without a correction it reports the uncorrected numbers.
    raw = LareqaEvaluator(ds, name="raw")(load_model(str(model_dir), device="cpu"))
    assert raw["raw_multi_map"] == pytest.approx(uncorrected.metrics["multi.map"], abs=1e-6)


def test_evaluator_rejects_an_unknown_primary_metric(corrected):
    from polyret.errors import PolyretError
    from polyret.evaluate.st_evaluator import LareqaEvaluator

    with pytest.raises(PolyretError, match="primary_metric 'map'"):
        LareqaEvaluator(corrected[1], primary_metric="map")
    assert not LareqaEvaluator(corrected[1], primary_metric="rank_distance").greater_is_better


def test_trainer_logs_lareqa_and_keeps_the_best_checkpoint(corrected, tmp_path):
    """A plain SentenceTransformerTrainer run with the evaluator: every evaluation logs the LAReQA
    numbers, and load_best_model_at_end picks the checkpoint by the evaluator's primary metric."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from polyret.evaluate.st_evaluator import LareqaEvaluator

    _, ds, _, _ = corrected
    model = load_model(str(corrected[0]), device="cpu")
    pairs = Dataset.from_dict(
        {
            "anchor": [q.text for q in ds.questions[:32]],
            "positive": [ds.candidates[r[0]].sentence for r in ds.relevant[:32]],
        }
    )
    ev = LareqaEvaluator(ds, name="heldout", primary_metric="rank_distance")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=4,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_heldout_rank_distance",
        greater_is_better=False,
        report_to="none",
        learning_rate=5e-3,
        seed=0,
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=pairs, evaluator=ev, loss=MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "eval_heldout_multi_map" in h]
    assert [h["step"] for h in logged] == [2, 4]
    assert all(
        {"eval_heldout_mono_map", "eval_heldout_cross_map", "eval_heldout_rank_distance"} <= set(h) for h in logged
    )
    best = min(logged, key=lambda h: h["eval_heldout_rank_distance"])
    assert trainer.state.best_metric == pytest.approx(best["eval_heldout_rank_distance"])
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
