"""The fine-tuned XNLI mode: length-bucketed batches, settings, the tuned copy vs the cache, per-row ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need
from polyret.data.xnli import load_english_train
from polyret.errors import PolyretError
from polyret.evaluate.nli_finetune import (
    FineTuneSettings,
    LengthBucketBatchSampler,
    fine_tune_nli,
    pair_token_lengths,
)
from polyret.evaluate.xnli import _fine_tune_settings, evaluate_xnli


# ----------------------------------------------------------------------------- batches
def _sampler(lengths, batch_size=8, drop_last=False, seed=3, pool_batches=4):
    return LengthBucketBatchSampler(
        list(range(len(lengths))),
        batch_size,
        drop_last,
        seed=seed,
        lengths=np.asarray(lengths),
        pool_batches=pool_batches,
    )


def test_length_buckets_use_every_row_once_and_pad_less_than_random_batches():
    rng = np.random.default_rng(0)
    lengths = np.stack([rng.integers(5, 60, 203), rng.integers(4, 30, 203)], axis=1)
    s = _sampler(lengths)
    batches = list(s)
    assert len(batches) == len(s) == 26  # ceil(203 / 8)
    assert sorted(i for b in batches for i in b) == list(range(203))

    def padded(bs):  # tokens a batch costs: each column pads to its own longest sentence
        return sum(len(b) * (lengths[b, 0].max() + lengths[b, 1].max()) for b in bs)

    shuffled = rng.permutation(203)
    random_batches = [shuffled[i : i + 8] for i in range(0, 203, 8)]
    assert padded(batches) < 0.85 * padded(random_batches)
    # premise lengths inside a batch are close: the pool is sorted by them before cutting
    assert np.mean([np.ptp(lengths[b, 0]) for b in batches]) < 0.5 * np.mean(
        [np.ptp(lengths[b, 0]) for b in random_batches]
    )


def test_length_buckets_are_a_function_of_seed_and_epoch():
    lengths = np.stack([np.arange(100) % 37, np.arange(100) % 11], axis=1)
    a, b = _sampler(lengths, seed=1), _sampler(lengths, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(map(tuple, a)) != sorted(map(tuple, b))
    assert list(_sampler(lengths, seed=2)) != list(b)
    dropped = _sampler(lengths, drop_last=True)
    assert len(dropped) == len(list(dropped)) == 12 and all(len(x) == 8 for x in dropped)
    with pytest.raises(PolyretError, match="3 lengths for a dataset of 100 rows"):
        LengthBucketBatchSampler(list(range(100)), 8, False, lengths=np.ones((3, 2)))


# ----------------------------------------------------------------------------- settings
def test_fine_tune_settings_and_options():
    assert _fine_tune_settings(False) is None
    assert _fine_tune_settings(False, steps=0) is None  # the old "no fine-tuning" spelling
    on = _fine_tune_settings(False, steps=5)  # a positive step count alone turns it on
    assert on.steps == 5 and on.lr == FineTuneSettings().lr
    s = _fine_tune_settings(True, lr=3e-5, head="mlp", train_layers="all", max_length=32)
    assert (s.lr, s.head, s.train_layers, s.max_length) == (3e-5, "mlp", None, 32)
    assert _fine_tune_settings(True, train_layers="6").train_layers == 6
    assert FineTuneSettings(epochs=0.5, batch_size=10).total_steps(101) == 6
    with pytest.raises(PolyretError, match="fine_tune_lr given, but fine-tuning is off"):
        _fine_tune_settings(False, lr=1e-4)
    with pytest.raises(PolyretError, match="head must be one of linear, mlp"):
        _fine_tune_settings(True, head="deep")
    with pytest.raises(PolyretError, match="train layers must be a number or 'all'"):
        _fine_tune_settings(True, train_layers="top")
    with pytest.raises(PolyretError, match="lr must be positive"):
        FineTuneSettings(lr=0)
    with pytest.raises(PolyretError, match="unknown fine-tune option"):
        FineTuneSettings().with_options(learning_rate=1e-4)


# ----------------------------------------------------------------------------- training (tiny model)
@pytest.fixture(scope="module")
def small_train(shared_data):
    need(shared_data, "nli-en", "snli")
    return load_english_train("snli:dev", data_dir=shared_data).head(96)


def test_fine_tune_trains_top_layers_and_head_only_and_leaves_the_model(tiny_model, small_train):
    import torch

    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    settings = FineTuneSettings(
        steps=3, batch_size=16, lr=1e-2, head="mlp", mlp_hidden=8, train_layers=1, max_length=16
    )
    tuned, head = fine_tune_nli(tiny_model, small_train, settings, show_progress=False)
    after = tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".layer.1." in k for k in changed), changed  # only the top of 2 layers moved
    assert not any("word_embeddings" in k for k in changed)
    assert all(torch.equal(v, tiny_model.state_dict()[k]) for k, v in before.items())  # the caller's model is untouched
    assert tuned.max_seq_length == tiny_model.max_seq_length  # the short length was for training only
    assert isinstance(head, torch.nn.Sequential) and head(torch.zeros(2, 4 * 32)).shape == (2, 3)
    # lengths as the encoder sees them, capped at the training max length
    lengths = pair_token_lengths(tiny_model, small_train, "query: ", 16)
    assert lengths.shape == (96, 2) and lengths.max() <= 16 and lengths.min() > 2


class _NoCache:
    def __init__(self, *a, **k):
        raise AssertionError("the tuned copy touched the embedding cache")


def test_fine_tuned_mode_never_touches_the_cache_and_records_its_protocol(
    tiny_model, shared_data, small_train, tmp_path, monkeypatch
):
    import polyret.encode

    xnli = need(shared_data, "xnli")
    cache = tmp_path / "cache"
    monkeypatch.setattr(polyret.encode, "EmbeddingCache", _NoCache)
    res = evaluate_xnli(
        tiny_model,
        xnli,
        langs=["en", "sw", "ur"],
        english_train=small_train,
        max_rows=30,
        n_bootstrap=50,
        show_progress=False,
        cache=cache,
        fine_tune=True,
        fine_tune_steps=2,
        fine_tune_batch_size=16,
        fine_tune_head="linear",
        fine_tune_max_length=24,
        out_dir=tmp_path / "out",
    )
    assert not cache.exists()
    ft = res["protocol"]["fine_tune"]
    assert (ft["total_steps"], ft["batch_size"], ft["head"], ft["max_length"]) == (2, 16, "linear", 24)
    assert res["protocol"]["mode"] == "fine-tuned encoder + linear head"
    assert res["protocol"]["selection_on_evaluated_split"] is False
    assert res["timing"]["fine_tune_s"] > 0
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["protocol"]["fine_tune"]["lr"] == FineTuneSettings().lr
    # the frozen probe, by contrast, does use (and fill) the cache
    monkeypatch.undo()
    evaluate_xnli(
        tiny_model,
        xnli,
        langs=["sw"],
        english_train=small_train,
        max_rows=30,
        n_bootstrap=50,
        show_progress=False,
        cache=cache,
        Cs=(1.0,),
    )
    assert any(cache.rglob("*"))


def test_missing_english_training_file_fails_before_any_model_work(shared_data, tmp_path):
    xnli = need(shared_data, "xnli")
    # the model name does not exist either: the training-data error must come first
    with pytest.raises(PolyretError, match=r"'.*missing\.tsv' is neither"):
        evaluate_xnli(
            str(tmp_path / "no-model"),
            xnli,
            english_train=str(tmp_path / "missing.tsv"),
            fine_tune=True,
            show_progress=False,
        )
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(PolyretError, match=r"empty\.tsv holds no rows"):
        evaluate_xnli(str(tmp_path / "no-model"), xnli, english_train=str(empty), fine_tune=True, show_progress=False)
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tentailment\na\tb\n", encoding="utf-8")
    with pytest.raises(PolyretError, match=r"bad\.tsv, line 2: expected 3 tab-separated fields"):
        evaluate_xnli(str(tmp_path / "no-model"), xnli, english_train=str(bad), fine_tune=True, show_progress=False)


def test_training_on_one_side_of_xnli_dev_scores_only_the_other(tiny_model, shared_data, tmp_path):
    from polyret.data.parallel import xnli_side_rows

    xnli = need(shared_data, "xnli")
    # scoring rows the English data trains on (or their translations) is refused before any model work
    with pytest.raises(PolyretError, match=r"alignment side \(xnli:align\).*--rows eval-side"):
        evaluate_xnli(str(tmp_path / "no-model"), xnli, english_train="xnli:align*4", rows="all", show_progress=False)
    with pytest.raises(PolyretError, match=r"evaluation side \(xnli:eval\)"):
        evaluate_xnli(str(tmp_path / "no-model"), xnli, english_train="snli:dev,xnli:eval", show_progress=False)
    # rows auto: the evaluation side when training reads the alignment side, all rows otherwise
    kw = dict(
        langs=["en", "sw"],
        max_rows=30,
        max_train=150,
        n_bootstrap=50,
        show_progress=False,
        cache=tmp_path / "cache",
        Cs=(1.0,),
    )
    res = evaluate_xnli(tiny_model, xnli, english_train="xnli:align", **kw)
    assert res["protocol"]["rows"] == "eval-side"
    assert res["protocol"]["english_train"]["sources"] == ["xnli:align[:150]"]
    eval_side = set(xnli_side_rows(xnli, "eval").tolist())
    assert set(res["per_language"]["sw"]["rows"]) <= eval_side and len(res["per_language"]["sw"]["rows"]) == 30
    res = evaluate_xnli(tiny_model, xnli, english_train=load_english_train("snli:dev", data_dir=shared_data), **kw)
    assert res["protocol"]["rows"] == "all" and res["per_language"]["sw"]["rows"] == list(range(30))


# ----------------------------------------------------------------------------- per-row ids for paired tests
def test_per_row_ids_keep_file_rows_and_cluster_by_premise(tiny_model, shared_data, tmp_path):
    from polyret.data.parallel import xnli_premise_index, xnli_side_rows

    xnli = need(shared_data, "xnli")
    train = load_english_train("snli:dev", data_dir=shared_data).head(120)
    kw = dict(
        langs=["en", "sw", "ur"],
        english_train=train,
        n_bootstrap=50,
        show_progress=False,
        cache=tmp_path / "cache",
        Cs=(1.0,),
    )
    side = evaluate_xnli(tiny_model, xnli, rows="eval-side", max_rows=40, **kw)
    full = evaluate_xnli(tiny_model, xnli, max_rows=90, **kw)
    eval_rows = xnli_side_rows(xnli, "eval")[:40].tolist()
    premise = xnli_premise_index(xnli)
    pq = side.per_query
    assert {
        "accuracy",
        "accuracy[en]",
        "accuracy[sw]",
        "accuracy[ur]",
        "non_english.accuracy",
        "low_resource.accuracy",
    } <= set(pq)
    side.check_per_query()  # every per-row array reproduces its headline number
    assert pq["accuracy[sw]"].ids.tolist() == [f"sw|{r}" for r in eval_rows]
    assert pq["low_resource.accuracy"].ids.tolist() == [f"{l}|{r}" for l in ("sw", "ur") for r in eval_rows]
    assert pq["accuracy"].clusters.tolist()[:40] == [f"p{premise[r]}" for r in eval_rows]
    # a row's three hypotheses and its translations share one cluster
    assert len(set(pq["accuracy"].clusters.tolist())) == len({premise[r] for r in eval_rows})
    # the eval-side rows inside the full run's first 90 rows pair up by id, with equal correctness
    # (same English classifier: the probe selects C on the rows it evaluates, here one C only)
    shared = sorted(set(pq["accuracy[sw]"].ids.tolist()) & set(full.per_query["accuracy[sw]"].ids.tolist()))
    assert shared == sorted(f"sw|{r}" for r in eval_rows if r < 90)
    a = dict(zip(pq["accuracy[sw]"].ids.tolist(), pq["accuracy[sw]"].values))
    b = dict(zip(full.per_query["accuracy[sw]"].ids.tolist(), full.per_query["accuracy[sw]"].values))
    assert [a[i] for i in shared] == [b[i] for i in shared]


# ----------------------------------------------------------------------------- CLI and experiment suite
def test_cli_fine_tune_options(tiny_model, shared_data, tmp_path, capsys):
    from polyret.cli import main

    xnli = need(shared_data, "xnli")
    need(shared_data, "nli-en", "SICK.txt")
    model_dir = tmp_path / "tiny"
    tiny_model.save(str(model_dir))
    base = [
        "eval",
        "xnli",
        "--model",
        str(model_dir),
        "--data",
        str(xnli),
        "--langs",
        "en,sw",
        "--max-rows",
        "20",
        "--english-train",
        "sick:TRIAL",
        "--max-train",
        "64",
        "--no-progress",
    ]
    main(
        base
        + [
            "--fine-tune",
            "--fine-tune-steps",
            "2",
            "--fine-tune-batch-size",
            "16",
            "--fine-tune-lr",
            "5e-5",
            "--fine-tune-head",
            "mlp",
            "--fine-tune-layers",
            "all",
            "--fine-tune-max-length",
            "32",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    ft = json.loads((tmp_path / "o" / "results.json").read_text())["protocol"]["fine_tune"]
    assert (ft["total_steps"], ft["batch_size"], ft["lr"], ft["head"], ft["train_layers"], ft["max_length"]) == (
        2,
        16,
        5e-5,
        "mlp",
        None,
        32,
    )
    with pytest.raises(SystemExit) as e:
        main(base + ["--fine-tune-lr", "1e-4", "--out", str(tmp_path / "p")])
    assert e.value.code == 2 and "fine-tuning is off" in capsys.readouterr().err


def test_experiment_xnli_suite_passes_fine_tune_options(tiny_model, shared_data, tmp_path):
    from polyret.experiment.config import SuiteConfig
    from polyret.experiment.suites import SuiteContext, xnli_suite

    need(shared_data, "xnli")
    need(shared_data, "nli-en", "SICK.txt")
    suite = SuiteConfig(
        name="xnli",
        split="dev",
        langs=["en", "sw", "ur"],
        options={
            "fine_tune": True,
            "fine_tune_steps": 2,
            "fine_tune_batch_size": 16,
            "english_train": "sick:TRIAL",
            "max_train": 48,
            "max_rows": 20,
            "rows": "eval-side",
            "n_bootstrap": 50,
        },
    )
    res = xnli_suite(tiny_model, suite, tmp_path / "s", SuiteContext(tmp_path, show_progress=False))
    assert res.raw["protocol"]["fine_tune"]["total_steps"] == 2 and res.raw["protocol"]["rows"] == "eval-side"
    assert "low_resource.accuracy" in res.per_query and "accuracy[ur]" in res.per_query
    res.check_per_query()


# ----------------------------------------------------------------------------- paired comparison of two results
def _synthetic_results(tmp_path, preds: dict[str, np.ndarray], gold: np.ndarray, rows=None):
    names = ("entailment", "neutral", "contradiction")
    langs = {}
    for lang, p in preds.items():
        path = tmp_path / f"dev-{lang}.tsv"
        if not path.exists():
            path.write_text(
                "".join(f"premise {i // 3}\thyp {i}\t{names[g]}\n" for i, g in enumerate(gold)), encoding="utf-8"
            )
        r = list(range(len(gold))) if rows is None else list(rows)
        langs[lang] = {"rows": r, "predicted": p[r].tolist(), "correct": (p[r] == gold[r]).astype(int).tolist()}
    return {
        "model": "m",
        "split": "dev",
        "xnli_dir": str(tmp_path),
        "languages": langs,
        "premise_of_row": [i // 3 for i in range(len(gold))],
        "low_resource": {"languages": ["sw", "ur"]},
    }


def test_compare_xnli_pairs_common_rows_and_tests_languages_and_the_low_resource_block(tmp_path):
    from sklearn.metrics import f1_score

    from polyret.evaluate.xnli_compare import compare_xnli, comparison_markdown

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 600)
    noisy = lambda acc: np.where(rng.random(600) < acc, gold, rng.integers(0, 3, 600))  # noqa: E731
    base = {l: noisy(0.5) for l in ("en", "sw", "ur")}
    better = {"en": base["en"].copy(), "sw": np.where(rng.random(600) < 0.5, gold, base["sw"]), "ur": base["ur"].copy()}
    odd = [i for i in range(600) if (i // 3) % 2 == 1]  # an eval-side-like subset for b
    a = _synthetic_results(tmp_path, better, gold)
    b = _synthetic_results(tmp_path, base, gold, rows=odd)
    cmp = compare_xnli(a, b, n_permutations=2000, n_bootstrap=500)
    sw, en = cmp["languages"]["sw"], cmp["languages"]["en"]
    assert sw["n_rows"] == en["n_rows"] == len(odd) and sw["n_units"] == 100
    assert sw["accuracy_delta"] > 0.1 and sw["accuracy_p"] < 0.01 and sw["accuracy_delta_ci95"][0] > 0
    want = f1_score(gold[odd], better["sw"][odd], average="macro") - f1_score(
        gold[odd], base["sw"][odd], average="macro"
    )
    assert sw["macro_f1_delta"] == pytest.approx(want)
    assert sw["macro_f1_delta_ci95"][0] > 0 and sw["macro_f1_p"] < 0.01
    assert en["accuracy_delta"] == 0 and en["accuracy_p"] == 1.0 and en["macro_f1_delta"] == 0
    low = cmp["low_resource"]
    assert low["languages"] == ["sw", "ur"]
    assert low["accuracy_delta"] == pytest.approx((sw["accuracy_delta"] + cmp["languages"]["ur"]["accuracy_delta"]) / 2)
    assert 0 < low["accuracy_delta_ci95"][0] < low["accuracy_delta"] < low["accuracy_delta_ci95"][1]
    assert "| sw | 300 |" in comparison_markdown(cmp, "recipe", "base")
    a["languages"]["sw"]["predicted"][3] = (
        a["languages"]["sw"]["predicted"][3] + 1
    ) % 3  # row 3 (shared) no longer matches "correct"
    with pytest.raises(PolyretError, match="do not match the labels"):
        compare_xnli(a, b, n_permutations=100, n_bootstrap=50)


def test_shipped_xnli_finetune_experiment_config_is_valid():
    import inspect
    from pathlib import Path

    from polyret.experiment.config import load_experiment_config

    cfg, _ = load_experiment_config(Path(__file__).parents[1] / "configs" / "experiments" / "xnli-finetune.yaml")
    (suite,) = cfg.suites
    assert suite.name == "xnli" and suite.options["rows"] == "eval-side" and suite.options.get("max_rows") is None
    inspect.signature(evaluate_xnli).bind(None, None, **suite.options)  # every option is an evaluate_xnli keyword
    assert _fine_tune_settings(suite.options["fine_tune"]) == FineTuneSettings()


def test_cli_xnli_compare(tmp_path, capsys):
    from polyret.cli import main
    from polyret.io import write_json

    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 60)
    a = _synthetic_results(tmp_path, {"sw": gold.copy(), "ur": gold.copy()}, gold)
    b = _synthetic_results(tmp_path, {"sw": (gold + 1) % 3, "ur": gold.copy()}, gold)
    write_json(tmp_path / "a.json", a)
    (tmp_path / "b").mkdir()
    write_json(tmp_path / "b" / "results.json", b)
    args = [
        "eval",
        "xnli-compare",
        str(tmp_path / "a.json"),
        str(tmp_path / "b"),
        "--label-a",
        "recipe",
        "--label-b",
        "base",
        "--permutations",
        "200",
        "--bootstrap",
        "100",
        "--out",
        str(tmp_path / "cmp"),
    ]
    main(args)
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["languages"]["sw"]["accuracy_delta"] == pytest.approx(1.0)
    assert cmp["low_resource"]["accuracy_delta"] == pytest.approx(0.5)
    assert "| sw | 60 | 100.0 | 0.0 |" in (tmp_path / "cmp.md").read_text()
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "already exist" in capsys.readouterr().err
