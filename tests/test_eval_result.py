"""EvalResult: the typed result every evaluator returns (flat metrics, per-query values, raw dict)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.evaluate.result import EvalResult, PerQuery, load_per_query, lower_is_better, save_per_query


def _result() -> EvalResult:
    # en: 3 queries (mean 0.5), de: 1 query (1.0) -> macro mean 0.75, micro mean 0.625
    pq = PerQuery.build(
        ["en|0", "en|1", "en|2", "de|0", "de|1"],
        [0.0, 0.5, 1.0, 1.0, float("nan")],
        ["en", "en", "en", "de", "de"],
        ["0", "1", "2", "0", "1"],
    )
    return EvalResult(
        "toy",
        {"map": 0.75, "map[en]": 0.5, "map[de]": 1.0},
        ["map"],
        {"Toy mAP": ["map"]},
        {"map": pq},
        {"map": {"mean": 0.75}, "languages": ["en", "de"]},
    )


def test_per_query_drops_undefined_entries_and_reproduces_the_macro_mean():
    res = _result()
    pq = res.per_query["map"]
    assert pq.ids.tolist() == ["en|0", "en|1", "en|2", "de|0"] and pq.groups.shape == (4, 1)
    assert pq.macro_mean() == pytest.approx(0.75)
    res.check_per_query()
    res.metrics["map"] = 0.625  # the micro mean: a per-query array that misses its headline is an error
    with pytest.raises(RuntimeError, match="toy map"):
        res.check_per_query()


def test_reads_like_the_old_results_dict_and_round_trips(tmp_path):
    res = _result()
    assert res["map"]["mean"] == 0.75 and "languages" in res and dict(res) == res.raw
    back = EvalResult.from_json(json.loads(json.dumps(res.to_json())), res.per_query)
    assert (back.task, back.metrics, back.headline, back.per_language) == (
        "toy",
        res.metrics,
        ["map"],
        {"Toy mAP": ["map"]},
    )
    save_per_query(tmp_path / "pq.npz", res.per_query)
    loaded = load_per_query(tmp_path / "pq.npz")["map"]
    for field in ("ids", "values", "groups", "clusters"):
        assert np.array_equal(getattr(loaded, field), getattr(res.per_query["map"], field))
    assert load_per_query(tmp_path / "missing.npz") == {}


def test_lower_is_better_reads_the_metric_name_without_language():
    assert (
        lower_is_better("rank_distance") and lower_is_better("rank_distance[de]") and not lower_is_better("multi.map")
    )
