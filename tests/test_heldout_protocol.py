"""The held-out protocol recipes are chosen by (issue 27): one held-out pool across seeds and across
recipes that add a training set (`validation_seed`, `validation_sources`), the `heldout` experiment
suite that scores any model on it, and hard negatives in the query's language (`negatives_language`)."""

from __future__ import annotations

import json

import pytest
from test_batches import synthetic_groups

from polyret.batches import PairTable, text_key
from polyret.config import config_from_dict
from polyret.data.groups import ParallelGroup, write_groups_jsonl
from polyret.errors import PolyretError
from polyret.train_prepare import heldout_split, split_validation


def _ids(groups) -> list[tuple[str, str]]:
    return [(g.source, g.id) for g in groups]


def test_validation_sources_keep_the_held_out_pool_when_a_training_set_is_added():
    base = synthetic_groups(400, seed=3, sources={"mlqa": 2.0, "xnli": 1.0}, share_paragraphs=True)
    extra = [
        ParallelGroup(id=f"t{i}", queries={"de": f"satz {i}"}, positives={"en": f"sentence {i}"}, source="tatoeba")
        for i in range(300)
    ]
    train_a, val_a = split_validation(base, 40, seed=7)
    # None = every set, which is what the shipped configs have always done.
    assert _ids(split_validation(base, 40, 7, sources=["mlqa", "xnli"])[1]) == _ids(val_a)
    train_b, val_b = split_validation(base + extra, 40, 7, sources=["mlqa", "xnli"])
    assert _ids(val_b) == _ids(val_a)
    assert _ids(g for g in train_b if g.source != "tatoeba") == _ids(train_a)
    assert sum(g.source == "tatoeba" for g in train_b) == 300
    # Without the setting the added set moves the draw: the two recipes would be scored on different pools.
    assert _ids(split_validation(base + extra, 40, 7)[1]) != _ids(val_a)
    only = split_validation(base + extra, 40, 7, sources=["tatoeba"])[1]
    assert {g.source for g in only} == {"tatoeba"} and len(only) == 40


def test_validation_sources_and_sizes_fail_clearly():
    groups = synthetic_groups(50, seed=1, sources={"mlqa": 1.0})
    with pytest.raises(PolyretError, match=r"validation_sources: no training group comes from 'xnli'.*mlqa"):
        split_validation(groups, 10, 0, sources=["xnli"])
    with pytest.raises(PolyretError, match=r"validation_groups=50 leaves no training data \(50 groups"):
        split_validation(groups, 50, 0)


def test_validation_seed_fixes_the_pool_across_seeds(tmp_path):
    data = tmp_path / "groups.jsonl"
    write_groups_jsonl(synthetic_groups(200, seed=2), data)
    common = {"data": [str(data)], "validation_groups": 20, "keep_best": False}
    pools = {s: _ids(heldout_split(config_from_dict(common | {"seed": s}))[1]) for s in (1, 2)}
    assert pools[1] != pools[2]  # by default each seed holds out its own groups
    fixed = {s: heldout_split(config_from_dict(common | {"seed": s, "validation_seed": 1})) for s in (1, 2)}
    assert _ids(fixed[1][1]) == _ids(fixed[2][1]) == pools[1]
    assert _ids(fixed[2][0]) == _ids(fixed[1][0])


def test_run_keys_ignore_a_validation_seed_equal_to_the_seed(tmp_path):
    from test_experiment import make_config

    from polyret.experiment.grid import expand_grid

    grid = {"strategies": ["hybrid"], "alphas": [0.5], "seeds": [42, 1], "merge_weights": [1.0]}
    overrides = make_config().train.overrides
    _, plain = expand_grid(make_config(grid=grid), tmp_path)
    _, fixed = expand_grid(make_config(grid=grid, train={"overrides": overrides | {"validation_seed": 42}}), tmp_path)
    keys = {r.seed: r.train_key for r in plain if r.train_key}
    fixed_keys = {r.seed: r.train_key for r in fixed if r.train_key}
    assert fixed_keys[42] == keys[42]  # the same split: the same training, reused
    assert fixed_keys[1] != keys[1]
    assert "validation_sources" not in plain[1].train_config and "negatives_language" not in plain[1].train_config


def _parallel_groups() -> list[ParallelGroup]:
    """MLQA-shaped: questions in ar/de/es, paragraphs (answer + other sentences) in de/es only."""
    return [
        ParallelGroup(
            id=f"q{i}",
            queries={"ar": f"سؤال {i}", "de": f"Frage {i}", "es": f"pregunta {i}"},
            positives={"de": f"Antwort {i}", "es": f"respuesta {i}"},
            negatives={"de": [f"Satz {i} {k}" for k in range(3)], "es": [f"frase {i} {k}" for k in range(3)]},
            source="mlqa",
        )
        for i in range(30)
    ]


def test_query_language_negatives_are_in_the_question_language():
    groups = _parallel_groups()
    by_text = {t: (g.id, lang) for g in groups for lang, ts in g.negatives.items() for t in ts}
    by_text |= {t: (g.id, lang) for g in groups for lang, t in g.positives.items()}
    table = PairTable.from_groups(groups, n_negatives=2, seed=0, negatives_language="query")
    passage = PairTable.from_groups(groups, n_negatives=2, seed=0)
    checked = 0
    for r in range(len(table)):
        gi, q, p, _ = table.row_info(r)
        for neg in table.negatives[r]:
            owner, lang = by_text[neg]
            assert lang == q, (q, p, neg)
            if q in groups[gi].negatives:  # the question's own paragraph in its language: its other sentences
                assert owner == groups[gi].id and neg in groups[gi].negatives[q]
            else:  # ar: no ar paragraph anywhere in this set -> nothing to fill from, but never a wrong language
                raise AssertionError("an ar row cannot have ar negatives here")
            checked += 1
    assert checked > 0
    # ar questions have no ar text to be distracted by in this set: their rows are dropped and counted.
    assert not any(table.query_lang == "ar") and table.stats["rows_dropped_negatives"] == 30 * 2
    assert all(
        passage.negatives[r][0] in groups[passage.row_info(r)[0]].negatives[passage.row_info(r)[2]]
        for r in range(len(passage))
    )


def test_query_language_negatives_borrow_another_sets_texts_in_that_language():
    xnli = [
        ParallelGroup(id=f"x{i}", queries={"ar": f"فرضية {i}"}, positives={"ar": f"مقدمة {i}"}, source="xnli")
        for i in range(10)
    ]
    groups = _parallel_groups() + xnli
    table = PairTable.from_groups(groups, n_negatives=1, seed=0, negatives_language="query")
    xnli_ar = {g.positives["ar"] for g in xnli}
    ar_rows = [r for r in range(len(table)) if table.query_lang[r] == "ar" and table.source[r] == "mlqa"]
    assert len(ar_rows) == 60 and all(table.negatives[r][0] in xnli_ar for r in ar_rows)
    # A batch holds one source, so a text borrowed from another never meets its own group there: no
    # conflict key (with one, every group that borrowed it could not share a batch with the others).
    for r in ar_rows:
        assert text_key(table.negatives[r][0]) not in table.group_keys[table.row_info(r)[0]]
    # The xnli rows have no other source in ar to borrow from: within the source, with a conflict key.
    for r in (r for r in range(len(table)) if table.source[r] == "xnli"):
        neg = table.negatives[r][0]
        lender = next(i for i, g in enumerate(groups) if neg in g.positives.values())
        assert groups[lender].source == "xnli" and lender != table.row_info(r)[0]
        assert text_key(neg) in table.group_keys[table.row_info(r)[0]]


def test_negatives_language_needs_negatives():
    with pytest.raises(PolyretError, match="negatives_language chooses hard negatives"):
        config_from_dict({"negatives_language": "query"})
    with pytest.raises(PolyretError, match="negatives_language must be one of"):
        PairTable.from_groups(_parallel_groups(), n_negatives=1, negatives_language="doc")


def test_heldout_suite_scores_exactly_the_groups_a_training_holds_out(tiny_model, tmp_path, monkeypatch):
    from polyret.experiment import SuiteConfig, SuiteContext
    from polyret.experiment.suites import SUITES

    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "groups.jsonl"
    write_groups_jsonl(_parallel_groups(), data)
    (tmp_path / "recipe.yaml").write_text(
        f"data: [{data}]\nvalidation_groups: 6\nkeep_best: false\nunit: sentence\nseed: 3\n"
    )
    suite = SuiteConfig(name="heldout", data="recipe.yaml", options={"config_overrides": {"validation_seed": 5}})
    result = SUITES["heldout"](
        tiny_model, suite, tmp_path / "out", SuiteContext(config_dir=tmp_path, show_progress=False)
    )
    held = split_validation(_parallel_groups(), 6, seed=5)[1]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["n_questions"] == sum(len(g.queries) for g in held) == 18
    # each held-out paragraph's answer and its other sentences are the candidates
    assert res["n_candidates"] == sum(len(g.positives) + sum(map(len, g.negatives.values())) for g in held)
    assert len(result.per_query["multi.map"].values) == 18
    assert 0.0 < result.metrics["multi.map"] <= 1.0
    with pytest.raises(PolyretError, match="give the training config"):
        SUITES["heldout"](tiny_model, SuiteConfig(name="heldout"), tmp_path / "o2", SuiteContext(tmp_path, False))
