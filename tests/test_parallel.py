"""XNLI dev's alignment / evaluation split: parallel, disjoint, and what `eval xnli --rows eval-side` scores."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import need
from polyret.data.parallel import xnli_parallel_groups, xnli_side_rows, xnli_side_sentences
from polyret.data.xnli import read_xnli_tsv
from polyret.errors import PolyretError


def test_sides_partition_the_rows_by_premise_and_share_no_sentence(shared_data):
    xnli = need(shared_data, "xnli")
    en = read_xnli_tsv(xnli / "dev-en.tsv")
    align, evals = xnli_side_rows(xnli, "align"), xnli_side_rows(xnli, "eval")
    assert len(align) + len(evals) == len(en) and not set(align) & set(evals)
    # every premise (and so each of its three hypotheses) lies on one side only
    side_of = {}
    for side, rows in (("align", align), ("eval", evals)):
        for r in rows:
            assert side_of.setdefault(en.premises[r], side) == side
    for lang in ("en", "sw"):
        a = set(xnli_side_sentences(xnli, lang, side="align"))
        e = set(xnli_side_sentences(xnli, lang, side="eval"))
        assert a and e and not a & e
    with pytest.raises(PolyretError, match="unknown XNLI side"):
        xnli_side_rows(xnli, "test")


def test_groups_are_parallel_entailment_pairs_of_the_alignment_side(shared_data):
    xnli = need(shared_data, "xnli")
    groups = xnli_parallel_groups(xnli, ["en", "de", "zh"])
    en = read_xnli_tsv(xnli / "dev-en.tsv")
    de = read_xnli_tsv(xnli / "dev-de.tsv")
    align_premises = {en.premises[r] for r in xnli_side_rows(xnli, "align")}
    assert len(groups) == len(align_premises)  # one group per premise (each has one entailed hypothesis)
    row_of = {(p, h): r for r, (p, h) in enumerate(zip(en.premises, en.hypotheses))}
    for g in groups[:50]:
        assert set(g.queries) == set(g.positives) == {"en", "de", "zh"}
        r = row_of[(g.positives["en"], g.queries["en"])]
        assert en.labels[r] == 0 and g.positives["en"] in align_premises
        assert (g.positives["de"], g.queries["de"]) == (de.premises[r], de.hypotheses[r])  # row-parallel
    assert len(xnli_parallel_groups(xnli, ["en"], max_groups=7)) == 7
    assert np.all(np.diff([int(g.id.rsplit("p", 1)[1]) for g in groups]) > 0)


def test_eval_xnli_eval_side_scores_only_the_evaluation_rows(tiny_model, shared_data, tmp_path):
    from polyret.data.xnli import load_english_train
    from polyret.evaluate.xnli import evaluate_xnli

    xnli = need(shared_data, "xnli")
    need(shared_data, "nli-en", "snli")
    train = load_english_train("snli:dev", data_dir=shared_data).head(150)
    res = evaluate_xnli(
        tiny_model,
        xnli,
        langs=["sw"],
        english_train=train,
        rows="eval-side",
        max_rows=60,
        n_bootstrap=50,
        show_progress=False,
        cache=tmp_path / "cache",
        Cs=(1.0,),
    )
    assert res["protocol"]["rows"] == "eval-side" and res["per_language"]["sw"]["n"] == 60
    # The same as evaluating files that hold only the evaluation side's rows (English too: selection).
    sub = tmp_path / "eval-side"
    sub.mkdir()
    rows = xnli_side_rows(xnli, "eval")
    names = ("entailment", "neutral", "contradiction")
    for lang in ("en", "sw"):
        pairs = read_xnli_tsv(xnli / f"dev-{lang}.tsv")
        (sub / f"dev-{lang}.tsv").write_text(
            "".join(f"{pairs.premises[r]}\t{pairs.hypotheses[r]}\t{names[pairs.labels[r]]}\n" for r in rows),
            encoding="utf-8",
        )
    ref = evaluate_xnli(
        tiny_model,
        sub,
        langs=["sw"],
        english_train=train,
        max_rows=60,
        n_bootstrap=50,
        show_progress=False,
        cache=tmp_path / "cache",
        Cs=(1.0,),
    )
    assert res["per_language"]["sw"]["correct"] == ref["per_language"]["sw"]["correct"]
    assert res["per_language"]["sw"]["accuracy"] == ref["per_language"]["sw"]["accuracy"]
    with pytest.raises(PolyretError, match="rows must be 'auto', 'all' or 'eval-side'"):
        evaluate_xnli(tiny_model, xnli, langs=["sw"], english_train=train, rows="align", show_progress=False)
