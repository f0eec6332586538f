"""No shipped config trains on a text that an evaluation scores.

For every config in configs/ (training configs, and the training runs every experiment config
expands to): build its training groups as `polyret train` does and intersect every text (queries,
positives, hard negatives, all languages) with the evaluation texts in the data directory: XQuAD-R
(questions, answer sentences, paragraphs), XNLI dev's evaluation side, and Tatoeba's evaluation side.
MLQA-R is not in the data directory (see its README), so it cannot be checked here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import need
from polyret.config import config_from_dict, load_train_config
from polyret.experiment.config import load_experiment_config
from polyret.experiment.grid import expand_grid
from polyret.train import load_training_groups

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _train_configs():
    """(where, TrainConfig) of every training run a shipped config describes."""
    out = [(p.name, load_train_config(p)) for p in sorted(CONFIGS.glob("*.yaml"))]
    for p in sorted((CONFIGS / "experiments").glob("*.yaml")):
        cfg, where = load_experiment_config(p)
        _, runs = expand_grid(cfg, where)
        out += [(f"experiments/{p.name}", config_from_dict(r.train_config)) for r in runs if r.train_config]
    return out


def _data_key(cfg):
    return (tuple(cfg.data), cfg.unit, cfg.negatives, cfg.answerless)


_GROUPS: dict[tuple, list] = {}


def _groups(cfg) -> list:
    """A config's training groups, read once per data setting for the whole module."""
    key = _data_key(cfg)
    if key not in _GROUPS:
        _GROUPS[key] = load_training_groups(cfg)
    return _GROUPS[key]


@pytest.fixture(scope="module")
def evaluation_texts(shared_data):
    from polyret.data.lareqa import load_lareqa
    from polyret.data.parallel import xnli_side_sentences
    from polyret.data.tatoeba import tatoeba_eval_texts
    from polyret.data.xnli import find_xnli_languages

    xquad = load_lareqa(need(shared_data, "lareqa", "xquad-r"))
    texts = {
        "XQuAD-R": set(xquad.question_texts())
        | {c.sentence for c in xquad.candidates}
        | {c.context for c in xquad.candidates}
    }
    xnli = need(shared_data, "xnli")
    texts["XNLI dev evaluation side"] = {
        s for lang in find_xnli_languages(xnli, "dev") for s in xnli_side_sentences(xnli, lang, side="eval")
    }
    texts["Tatoeba evaluation side"] = tatoeba_eval_texts(need(shared_data, "tatoeba"))
    return {name: {t.strip() for t in ts} for name, ts in texts.items()}


def test_every_shipped_config_trains_on_no_evaluation_text(shared_data, evaluation_texts, monkeypatch):
    monkeypatch.setenv("POLYRET_DATA", str(shared_data))
    configs = _train_configs()
    assert any("tatoeba-align" in c.data for _, c in configs)  # the check covers the new training set
    checked: dict[tuple, str] = {}
    for where, cfg in configs:
        key = _data_key(cfg)
        if key in checked:
            continue
        trained = set()
        for g in _groups(cfg):
            trained.update(g.queries.values(), g.positives.values(), *g.negatives.values())
        trained = {t.strip() for t in trained}
        assert len(trained) > 1000, where
        for name, texts in evaluation_texts.items():
            shared = sorted(trained & texts)
            assert not shared, f"{where} trains on {len(shared)} {name} texts, e.g. {shared[:3]}"
        checked[key] = where
    assert len(checked) >= 3


def test_the_tatoeba_sides_split_every_file_and_share_no_sentence(shared_data):
    from polyret.data.tatoeba import available_tatoeba_languages, read_tatoeba, tatoeba_eval_texts, tatoeba_side

    d = need(shared_data, "tatoeba")
    eval_texts = tatoeba_eval_texts(d)
    sizes = []
    for code in ("deu", "ara", "tha", "cmn"):
        bt = read_tatoeba(d, code)
        ev, al = tatoeba_side(bt, "eval"), tatoeba_side(bt, "align", eval_texts)
        assert len(ev) + len(al) <= len(bt) and len(al) > 0.3 * len(bt) and len(ev) > 0.3 * len(bt)
        assert not (set(al.other) | set(al.english)) & eval_texts
        assert set(ev.english) <= eval_texts and set(ev.other) <= eval_texts
        sizes.append(len(ev))
    # the evaluation side depends on each line alone: the same lines whatever else the directory holds
    assert len(tatoeba_side(read_tatoeba(d, "deu"), "eval")) == sizes[0] == 492
    assert len(available_tatoeba_languages(d)) > 100


def test_eval_tatoeba_scores_only_the_side_asked_for(tiny_model, tmp_path):
    import hashlib

    from polyret.errors import PolyretError
    from polyret.evaluate.tatoeba import evaluate_tatoeba

    d = tmp_path / "tt"
    d.mkdir()
    sents = [f"sentence number {i} about topic {i * 7 % 13}" for i in range(60)]
    for lang in ("abc", "eng"):
        (d / f"tatoeba.abc-eng.{lang}").write_text("\n".join(sents) + "\n", encoding="utf-8")
    # the evaluation side: the lines whose English sentence's blake2b-64 digest starts with an odd byte
    n_eval = sum(hashlib.blake2b(s.encode(), digest_size=8).digest()[0] % 2 for s in sents)
    assert 15 < n_eval < 45
    for side, n in (("all", 60), ("eval", n_eval), ("align", 60 - n_eval)):
        res = evaluate_tatoeba(tiny_model, d, ["abc"], cache=False, show_progress=False, side=side)
        assert res["per_language"]["abc"]["n"] == n and res["per_language"]["abc"]["mean"] == 1.0
        assert res["side"] == side
    with pytest.raises(PolyretError, match="unknown Tatoeba side 'test'"):
        evaluate_tatoeba(tiny_model, d, ["abc"], cache=False, show_progress=False, side="test")


def test_experiments_that_train_on_tatoeba_score_only_its_evaluation_side():
    """A guard: no shipped experiment trains on tatoeba-align yet; any that does must score side: eval."""
    for p in sorted((CONFIGS / "experiments").glob("*.yaml")):
        cfg, where = load_experiment_config(p)
        _, runs = expand_grid(cfg, where)
        if any("tatoeba-align" in r.train_config["data"] for r in runs if r.train_config):
            for suite in cfg.suites:
                if suite.name == "tatoeba":
                    assert (suite.options or {}).get("side") == "eval", f"{p.name}: a tatoeba suite must set side: eval"


def test_heldout_suites_score_exactly_what_every_training_held_out(shared_data, monkeypatch):
    """The recipe comparisons (issue 27) choose on one pool: every training run of an experiment with a
    `heldout` suite holds out exactly that suite's groups (whatever training sets it adds), and trains
    on no passage of them."""
    from polyret.experiment.suites import SuiteContext, resolve_data_dir
    from polyret.train_prepare import heldout_split

    monkeypatch.setenv("POLYRET_DATA", str(shared_data))
    compared = 0
    for p in sorted((CONFIGS / "experiments").glob("*.yaml")):
        exp, where = load_experiment_config(p)
        suites = [s for s in exp.suites if s.name == "heldout"]
        if not suites:
            continue
        _, runs = expand_grid(exp, where)
        for suite in suites:
            pool_path = resolve_data_dir(suite.data, suite.data, SuiteContext(where), "heldout")
            pool_cfg = load_train_config(pool_path, suite.options.get("config_overrides", {}))
            pool = [(g.source, g.id) for g in heldout_split(pool_cfg, _groups(pool_cfg))[1]]
            assert len(pool) == pool_cfg.validation_groups, p.name
            for run in (r for r in runs if r.train_config):
                cfg = config_from_dict(run.train_config)
                train, held = heldout_split(cfg, _groups(cfg))
                assert [(g.source, g.id) for g in held] == pool, f"{p.name} {run.label} seed {run.seed}"
                held_texts = set().union(*(g.passage_texts for g in held))
                assert not any(g.passage_texts & held_texts for g in train)
                compared += 1
    assert compared >= 10  # distill-*.yaml: 4 recipes x 3 seeds, and the batchings
