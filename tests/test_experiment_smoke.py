"""The real thing, small: configs/experiments/smoke.yaml (random tiny model, 2 strategies × 2 seeds,
real training, merging-free) through real LAReQA / Tatoeba / XNLI evaluation; an interruption
mid-grid, a resume, and a third invocation that reuses everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import need
from polyret.experiment import load_experiment_config, run_experiment

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "experiments" / "smoke.yaml"


def test_shipped_configs_validate_and_expand():
    from polyret.experiment import expand_grid

    sizes = {}
    for name in ("smoke", "paper-grid", "alpha-sweep", "lambda-sweep"):
        cfg, cdir = load_experiment_config(REPO / "configs" / "experiments" / f"{name}.yaml")
        variants, runs = expand_grid(cfg, cdir)
        sizes[name] = (len(variants), len(runs), len({r.train_key for r in runs if r.train_key}))
    # (variants incl. base, evaluated models incl. base, trainings)
    assert sizes["smoke"] == (3, 5, 4)
    assert sizes["paper-grid"] == (7, 19, 9)
    assert sizes["alpha-sweep"] == (6, 16, 15)
    assert sizes["lambda-sweep"] == (5, 13, 3)


def test_smoke_experiment_end_to_end(tmp_path, shared_data, monkeypatch, tiny_model):
    for part in ("lareqa/xquad-r", "tatoeba", "xnli", "mlqa-test"):
        need(shared_data, *part.split("/"))
    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))
    import polyret.train

    cfg, cdir = load_experiment_config(SMOKE)
    # Test-only trims that keep the grid's shape (the shipped file is the CLI's smoke run): two of
    # the MLQA files (joined on question id, as in one training set: es/de questions and
    # passages, so X-X-mono and X-Y pairs both exist), 2 steps, smaller evaluation subsets, and
    # the session's tiny model instead of building another one.
    mlqa = tmp_path / "mlqa-two-files"
    mlqa.mkdir()
    for name in ("test-context-de-question-es.json", "test-context-es-question-de.json"):
        (mlqa / name).symlink_to(need(shared_data, "mlqa-test", name))
    cfg.train.overrides.update(data=[str(mlqa)], steps=2, save_steps=2, logging_steps=1)
    lareqa = next(s for s in cfg.suites if s.name == "lareqa")
    lareqa.options.update(max_paragraphs=6)
    xnli = next(s for s in cfg.suites if s.name == "xnli")
    xnli.options.update(max_rows=60, max_train=200)
    tiny_dir = tiny_model[0].auto_model.config._name_or_path

    trained: list[tuple[str, bool]] = []

    def counting_train(config, out_dir, **kw):
        trained.append((Path(out_dir).name, kw.get("resume", False)))
        return polyret.train.train(config, out_dir, **kw)

    def crash_after_last_training(event, run, suite):
        if event == "train_done" and run.label == "hybrid α=0.5" and run.seed == 1:
            raise RuntimeError("simulated crash mid-grid")

    out = tmp_path / "exp"
    common = dict(
        config_dir=cdir,
        train_fn=counting_train,
        show_progress=False,
        build_base_fn=lambda spec, root: tiny_dir if spec == "tiny" else spec,
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(cfg, out, hook=crash_after_last_training, **common)
    assert len(trained) == 4 and not any(resume for _, resume in trained)
    assert not (out / "summary.json").exists()

    summary = run_experiment(cfg, out, **common)  # resume: nothing retrained, last run evaluated
    assert len(trained) == 4
    assert summary["counts"]["train_reused"] == 1  # only the crashed run needed its (finished) training
    assert summary["counts"]["evaluated"] == 3 and summary["counts"]["eval_reused"] == 12
    assert all(r["complete"] for r in summary["runs"]) and len(summary["runs"]) == 5

    again = run_experiment(cfg, out, **common)  # everything reused
    assert len(trained) == 4 and again["counts"]["evaluated"] == 0 and again["counts"]["eval_reused"] == 15
    assert again["aggregate"] == summary["aggregate"]

    on_disk = json.loads((out / "summary.json").read_text())
    agg = on_disk["aggregate"]
    assert set(agg) == {"base", "x-y", "hybrid α=0.5"}
    lq = agg["hybrid α=0.5"]["lareqa:xquad-r"]
    for metric in ("mono.map", "cross.map", "multi.map", "multi.recall@10", "rank_distance", "mono.map[de]"):
        assert lq[metric]["n"] == 2 and lq[metric]["ci95"][0] <= lq[metric]["mean"] <= lq[metric]["ci95"][1]
    assert agg["base"]["lareqa:xquad-r"]["multi.map"]["n"] == 1
    assert 0.0 < agg["x-y"]["xnli"]["accuracy"]["mean"] < 1.0
    assert "accuracy.mean" in agg["x-y"]["tatoeba"]
    # Paired tests on every suite with per-query values, each with the required fields.
    suites_tested = {t["suite"] for t in on_disk["tests"]}
    assert suites_tested == {"lareqa:xquad-r", "tatoeba", "xnli"}
    for t in on_disk["tests"]:
        assert {"a", "b", "suite", "metric", "delta", "p_value"} <= set(t) and 0 < t["p_value"] <= 1
    # The seed-pooled, macro-weighted test delta equals the difference of the aggregate means.
    t = next(t for t in on_disk["tests"] if (t["a"], t["b"], t["metric"]) == ("x-y", "base", "multi.map"))
    assert t["delta"] == pytest.approx(
        agg["x-y"]["lareqa:xquad-r"]["multi.map"]["mean"] - agg["base"]["lareqa:xquad-r"]["multi.map"]["mean"], abs=1e-9
    )
    md = (out / "report.md").read_text()
    assert "## lareqa:xquad-r" in md and "**Multi mAP** per source language" in md and "## Paired tests" in md
    assert (out / "plots" / "bars_lareqa_xquad-r.png").is_file()
    assert (out / "plots" / "heatmap_lareqa_xquad-r_multi.map.png").is_file()
    # The evaluators' own outputs are kept per run.
    assert len(list(out.glob("runs/*/eval/lareqa_xquad-r-*/results.json"))) == 5
