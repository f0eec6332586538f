"""`polyret ablation`: what one lever adds between two finished experiments (or two suites of one),
on fake experiments whose true effects are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_experiment import Fakes, make_config

from polyret.errors import PolyretError
from polyret.experiment import run_experiment
from polyret.experiment.ablation import ablation, experiment_per_query

LEVER = 0.05  # what the "lever" (6 training steps instead of 3) adds to every trained model
SHIFT = 0.03  # what the second suite (think: the same embeddings, language-corrected) adds to every model


class LeverFakes(Fakes):
    @staticmethod
    def quality(m) -> float:
        return Fakes.quality(m) + (LEVER if m.get("steps") == 6 else 0.0)

    def suite(self, model, suite, out_dir, ctx):
        res = super().suite(model, suite, out_dir, ctx)
        if (suite.label or "").endswith("+"):
            pq = res.per_query["map"]
            res.per_query["map"] = type(pq)(pq.ids, pq.values + SHIFT, pq.groups, pq.clusters)
            res.metrics["map"] += SHIFT
        return res


def _config(steps: int):
    return make_config(
        train={"overrides": {"steps": steps, "batch_size": 4, "validation_groups": 0, "keep_best": False}},
        grid={"strategies": ["x-y", "hybrid"], "alphas": [0.5], "seeds": [0, 1], "merge_weights": [1.0]},
        suites=[{"name": "fake", "label": "fakeqa"}, {"name": "fake", "label": "fakeqa+"}],
    )


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    with_lever = run_experiment(_config(6), root / "lever", **LeverFakes().kwargs())
    without = run_experiment(_config(3), root / "plain", **LeverFakes().kwargs())
    return root / "lever", root / "plain", with_lever, without


def test_lever_between_two_experiments_is_recovered_per_variant(two_experiments):
    lever, plain, s_lever, s_plain = two_experiments
    res = ablation(lever, plain, suite="fakeqa", n_permutations=2000, n_bootstrap=500)
    by_variant = {t["variant"]: t for t in res["tests"] if t["metric"] == "map"}
    # The base model is the very same run in both experiments: skipped, not reported as a zero effect.
    assert set(by_variant) == {"x-y", "hybrid α=0.5"}
    assert [s["variant"] for s in res["skipped"]] == ["base"]
    for v, t in by_variant.items():
        assert t["delta"] == pytest.approx(LEVER, abs=0.015) and t["significant"] and t["p_holm"] >= t["p_value"]
        assert t["delta_ci95"][0] < LEVER < t["delta_ci95"][1] + 0.01
        # Seeds pooled over the same queries: exactly the difference of the two reports' means.
        mean = lambda s: s["aggregate"][v]["fakeqa"]["map"]["mean"]  # noqa: E731
        assert t["delta"] == pytest.approx(mean(s_lever) - mean(s_plain), abs=1e-9)
        assert t["n_seeds"] == [2, 2] and t["n_queries"] > 100


def test_lever_between_two_suites_of_one_experiment_includes_the_base(two_experiments):
    _, plain, _, _ = two_experiments
    res = ablation(plain, plain, suite="fakeqa+", suite_b="fakeqa", n_permutations=2000, n_bootstrap=500)
    by_variant = {t["variant"]: t for t in res["tests"]}
    assert set(by_variant) == {"base", "x-y", "hybrid α=0.5"} and not res["skipped"]
    for t in by_variant.values():  # a constant shift of every query: the delta is exact
        assert t["delta"] == pytest.approx(SHIFT, abs=1e-9) and t["significant"]
    # Asked for the base alone across the two experiments: the same run on both sides, so nothing is tested.
    only_base = ablation(
        plain, two_experiments[0], suite="fakeqa", variants=["base"], n_permutations=200, n_bootstrap=50
    )
    assert only_base["tests"] == [] and only_base["skipped"][0]["variant"] == "base"


def test_seed_pooling_reads_only_finished_suites(two_experiments, tmp_path):
    lever = two_experiments[0]
    pooled = experiment_per_query(lever, "fakeqa")
    assert set(pooled) == {"base", "x-y", "hybrid α=0.5"}
    assert len(pooled["x-y"][1]) == 2 and len(pooled["base"][1]) == 1


def test_bad_input_is_one_clear_error(two_experiments, tmp_path):
    lever, plain, _, _ = two_experiments
    with pytest.raises(PolyretError, match="no summary.json"):
        ablation(tmp_path, plain, suite="fakeqa")
    with pytest.raises(PolyretError, match=r"no suite 'xquad' \(its suites: 'fakeqa', 'fakeqa\+'\)"):
        ablation(lever, plain, suite="xquad")
    with pytest.raises(PolyretError, match="'x-x-mono'.*not finished on both sides"):
        ablation(lever, plain, suite="fakeqa", variants=["x-x-mono"])
    with pytest.raises(PolyretError, match="nothing to compare"):
        ablation(lever, lever, suite="fakeqa")


def test_cli_writes_json_markdown_plot_and_never_overwrites(two_experiments, tmp_path, capsys):
    from polyret.cli import main

    lever, plain, _, _ = two_experiments
    out = tmp_path / "abl"
    args = [
        "ablation",
        str(lever),
        str(plain),
        "--suite",
        "fakeqa",
        "--label-a",
        "6 steps",
        "--label-b",
        "3 steps",
        "--permutations",
        "500",
        "--bootstrap",
        "200",
        "--out",
        str(out),
    ]
    main(args)
    res = json.loads((out / "ablation.json").read_text())
    assert res["labels"] == ["6 steps", "3 steps"] and {t["variant"] for t in res["tests"]} == {"x-y", "hybrid α=0.5"}
    md = (out / "ablation.md").read_text()
    assert md.startswith("# Ablation: 6 steps − 3 steps") and "| x-y | map | +0.0" in md and "Skipped base" in md
    assert (out / "ablation.png").stat().st_size > 1000
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "--overwrite" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as e:
        main(["ablation", str(Path(tmp_path) / "none"), str(plain), "--suite", "fakeqa", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "no summary.json" in " ".join(err.split()) and "Traceback" not in err


def test_same_label_with_other_suite_settings_is_compared_not_skipped(two_experiments, tmp_path):
    """Two experiments may give one label different options (e.g. a subset vs the whole set): the base
    is then not 'the same run' and is compared, whatever its run key."""
    plain = two_experiments[1]
    cfg = _config(3).model_copy(update={"suites": [_config(3).suites[0].model_copy(update={"options": {"subset": 2}})]})
    other = tmp_path / "other-options"
    run_experiment(cfg, other, **LeverFakes().kwargs())
    res = ablation(other, plain, suite="fakeqa", n_permutations=200, n_bootstrap=50)
    by_variant = {t["variant"]: t for t in res["tests"]}
    assert not res["skipped"] and set(by_variant) == {"base", "x-y", "hybrid α=0.5"}
    assert by_variant["base"]["delta"] == 0 and not by_variant["base"]["significant"]  # the fake ignores options
