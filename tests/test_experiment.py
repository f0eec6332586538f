"""Experiment runner with injected fake training / merging / evaluation: grid, keys, reuse, resume,
aggregation, tests, report. (The real end-to-end smoke run is in test_experiment_smoke.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from polyret.errors import PolyretError
from polyret.experiment import (
    EvalResult,
    ExperimentConfig,
    PerQuery,
    expand_grid,
    load_experiment_config,
    run_experiment,
)
from polyret.stats import mean_ci

N_EN, N_DE = 120, 40  # unbalanced languages: macro weighting matters


# ------------------------------------------------------------------------------------ fakes
class Fakes:
    """Fake train / merge / load / suite with call logs. A model is a JSON dict on disk."""

    def __init__(self):
        self.train_calls: list[tuple[str, bool]] = []
        self.merge_calls: list[float] = []
        self.eval_calls: list[str] = []
        self.crash_train_once: set[int] = set()  # seeds whose first training attempt dies midway

    def train(self, config, out_dir, *, resume=False, show_progress=True):
        out_dir = Path(out_dir)
        self.train_calls.append((out_dir.name, resume))
        if resume:
            assert (out_dir / "config.yaml").read_text() == config.model_dump_json()
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(config.model_dump_json())  # what the real `train` writes first
        (out_dir / "checkpoints").mkdir(exist_ok=True)
        if config.seed in self.crash_train_once:
            self.crash_train_once.discard(config.seed)
            raise KeyboardInterrupt("simulated kill during training")
        model = out_dir / "final"
        model.mkdir(exist_ok=True)
        (model / "model.json").write_text(
            json.dumps(
                {
                    "strategy": config.strategy,
                    "alpha": config.alpha,
                    "seed": config.seed,
                    "steps": config.steps,
                    "base": config.model,
                    "lam": 1.0,
                }
            )
        )
        return model

    def merge(self, base, tuned, weight, out):
        self.merge_calls.append(weight)
        m = json.loads((Path(tuned) / "model.json").read_text())
        m["lam"] = weight
        Path(out).mkdir(parents=True)
        (Path(out) / "model.json").write_text(json.dumps(m))
        return Path(out)

    @staticmethod
    def load(name):
        p = Path(name) / "model.json"
        return json.loads(p.read_text()) if p.is_file() else {"strategy": "base", "base": name}

    @staticmethod
    def quality(m) -> float:
        """True effect of a model on the fake metric: strategies differ, λ shrinks the effect."""
        if m["strategy"] == "base":
            return 0.0
        eff = {"x-x-mono": 0.02, "x-y": 0.10, "x-x": 0.03, "hybrid": 0.06 + 0.04 * (1 - m["alpha"])}[m["strategy"]]
        return eff * m["lam"]

    def suite(self, model, suite, out_dir, ctx):
        self.eval_calls.append(suite.label or suite.name)
        q = self.quality(model)
        difficulty = np.random.default_rng(123).random(N_EN + N_DE)  # shared by all models: paired
        noise = np.random.default_rng(1000 + model.get("seed", 0) * 7 + int(q * 1000)).normal(0, 0.05, N_EN + N_DE)
        vals = np.clip(0.3 + 0.4 * difficulty + q + noise, 0, 1)
        langs = ["en"] * N_EN + ["de"] * N_DE
        ids = np.array([f"{l}|q{i}" for i, l in enumerate(langs)])
        en, de = vals[:N_EN].mean(), vals[N_EN:].mean()
        rd = 100.0 - 300 * q + 5 * noise.mean()
        (Path(out_dir) / "results.json").write_text(json.dumps({"map": (en + de) / 2}))
        return EvalResult(
            task="fake",
            metrics={
                "map": (en + de) / 2,
                "map[en]": en,
                "map[de]": de,
                "rank_distance": rd,
                "undefined": float("nan"),
            },  # e.g. Cross mAP with a single language
            per_query={"map": PerQuery(ids, vals, np.array(langs)[:, None])},
            headline=["map", "rank_distance"],
            per_language={"Fake mAP": ["map"]},
        )

    def kwargs(self, **extra):
        return (
            dict(
                train_fn=self.train,
                merge_fn=self.merge,
                load_model_fn=self.load,
                build_base_fn=lambda spec, root: spec,
                suites={"fake": self.suite},
                show_progress=False,
            )
            | extra
        )


def make_config(**changes) -> ExperimentConfig:
    raw = {
        "name": "fake-grid",
        "base_models": ["fake-base"],
        "train": {"overrides": {"steps": 3, "batch_size": 4, "validation_groups": 0, "keep_best": False}},
        "grid": {
            "strategies": ["x-y", "hybrid"],
            "alphas": [0.0, 0.5, 1.0],
            "seeds": [0, 1, 2],
            "merge_weights": [1.0],
        },
        "suites": [{"name": "fake", "label": "fakeqa"}],
        "tests": {"n_permutations": 2000, "n_bootstrap": 500},
    }
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] = raw[k] | v
        else:
            raw[k] = v
    return ExperimentConfig.model_validate(raw)


# ------------------------------------------------------------------------------------ config
def test_config_file_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"grid": {"strategies": ["x-y"], "seedz": [1]}, "suites": [{"name": "xnli"}]}))
    with pytest.raises(PolyretError, match=r"bad.yaml: unknown key 'grid.seedz'"):
        load_experiment_config(bad)
    bad.write_text(
        yaml.safe_dump({"grid": {"strategies": ["x-y"], "merge_weights": [0.0]}, "suites": [{"name": "xnli"}]})
    )
    with pytest.raises(PolyretError, match=r"merge_weights.*λ = 0 is the base"):
        load_experiment_config(bad)
    bad.write_text(
        yaml.safe_dump(
            {"train": {"overrides": {"seed": 3}}, "grid": {"strategies": ["x-y"]}, "suites": [{"name": "xnli"}]}
        )
    )
    with pytest.raises(PolyretError, match=r"seed are set by the grid"):
        load_experiment_config(bad)
    bad.write_text(yaml.safe_dump({"grid": {"strategies": ["x-y"]}, "suites": [{"name": "xnli"}, {"name": "xnli"}]}))
    with pytest.raises(PolyretError, match="two suites have the label 'xnli'"):
        load_experiment_config(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(PolyretError, match="top level must be a mapping"):
        load_experiment_config(bad)
    with pytest.raises(PolyretError, match="not found"):
        load_experiment_config(tmp_path / "missing.yaml")


def test_bad_train_override_is_a_clear_error(tmp_path):
    cfg = make_config(train={"overrides": {"stepz": 3}})
    with pytest.raises(PolyretError, match="stepz"):
        expand_grid(cfg, tmp_path)


def test_train_yaml_settings_apply_but_the_grid_decides_strategy_seed_and_merging(tmp_path):
    (tmp_path / "train.yaml").write_text("model: default\nstrategy: x-y\nseed: 42\nsteps: 77\nmerge_weight: 0.5\n")
    cfg = make_config(
        train={"config": "train.yaml", "overrides": {"batch_size": 4}},
        grid={"strategies": ["hybrid"], "alphas": [0.25], "seeds": [3]},
    )
    _, runs = expand_grid(cfg, tmp_path)
    tc = runs[1].train_config
    assert (tc["steps"], tc["batch_size"], tc["strategy"], tc["alpha"], tc["seed"], tc["model"]) == (
        77,
        4,
        "hybrid",
        0.25,
        3,
        "fake-base",
    )
    assert tc["merge_weight"] is None  # merging is the grid's λ, never the training's
    with pytest.raises(PolyretError, match="train.config 'nope.yaml'"):
        expand_grid(make_config(train={"config": "nope.yaml"}), tmp_path)


def test_grid_expansion_and_run_keys(tmp_path):
    cfg = make_config(
        grid={
            "strategies": ["x-x-mono", "x-y", "hybrid"],
            "alphas": [0.25, 0.5],
            "seeds": [0, 1],
            "merge_weights": [0.5, 1.0],
        }
    )
    variants, runs = expand_grid(cfg, tmp_path)
    labels = [v.label() for v in variants]
    assert labels[0] == "base"
    assert "hybrid α=0.25 λ=0.5" in labels and "x-y" in labels and "x-x-mono λ=0.5" in labels
    assert len(variants) == 1 + (1 + 1 + 2) * 2
    assert len(runs) == 1 + (1 + 1 + 2) * 2 * 2
    assert len({r.key for r in runs}) == len(runs)
    # λ variants of one (strategy, α, seed) share one training.
    assert len({r.train_key for r in runs if r.train_key}) == (1 + 1 + 2) * 2
    # α is only varied for Hybrid; the run config carries the grid point.
    xy = [r for r in runs if r.variant.strategy == "x-y"]
    assert all(r.variant.alpha is None and r.train_config["strategy"] == "x-y" for r in xy)
    assert {r.train_config["seed"] for r in xy} == {0, 1}
    # Keys are a function of the full config: stable, and any training change moves trained keys only.
    _, again = expand_grid(cfg, tmp_path)
    assert [r.key for r in again] == [r.key for r in runs]
    _, changed = expand_grid(
        make_config(
            grid=cfg.grid.model_dump(),
            train={"overrides": {"steps": 4, "batch_size": 4, "validation_groups": 0, "keep_best": False}},
        ),
        tmp_path,
    )
    assert changed[0].key == runs[0].key  # base row unchanged
    assert not {r.key for r in changed[1:]} & {r.key for r in runs[1:]}
    # An option added later keeps old keys at its default (experiment dirs survive an upgrade) and
    # moves them once set.
    assert "answerless" not in runs[1].train_config
    from polyret.experiment.grid import config_hash

    assert runs[1].train_key == config_hash(runs[1].train_config)
    _, overlap = expand_grid(
        make_config(grid=cfg.grid.model_dump(), train={"overrides": {"answerless": "overlap"}}), tmp_path
    )
    assert overlap[1].train_config["answerless"] == "overlap" and overlap[1].train_key != runs[1].train_key


# ------------------------------------------------------------------------------------ running
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "out"
    fakes = Fakes()
    summary = run_experiment(make_config(), out, **fakes.kwargs())
    return out, fakes, summary


def test_summary_schema_and_aggregation(finished):
    out, fakes, summary = finished

    def no_nan(token):
        raise AssertionError(f"summary.json is not strict JSON: {token}")

    on_disk = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert on_disk["aggregate"] == summary["aggregate"]
    assert on_disk["aggregate"]["x-y"]["fakeqa"]["undefined"] == {"mean": None, "ci95": None, "n": 0, "std": None}
    assert len(summary["runs"]) == 1 + 4 * 3 and all(r["complete"] for r in summary["runs"])
    assert list(summary["aggregate"]) == ["base", "x-y", "hybrid α=0", "hybrid α=0.5", "hybrid α=1"]
    # Aggregate = t-interval over the seeds' own numbers.
    seeds = [r["results"]["fakeqa"]["map"] for r in summary["runs"] if r["variant"] == "x-y"]
    assert len(seeds) == 3
    stat = summary["aggregate"]["x-y"]["fakeqa"]["map"]
    ref = mean_ci(seeds)
    assert stat["mean"] == pytest.approx(ref.mean) and stat["ci95"] == pytest.approx(list(ref.ci95)) and stat["n"] == 3
    assert summary["aggregate"]["base"]["fakeqa"]["map"]["ci95"] is None  # one deterministic run
    assert "map[de]" in summary["aggregate"]["hybrid α=0.5"]["fakeqa"]
    # Each training ran once, each (run, suite) was evaluated once.
    assert len(fakes.train_calls) == 12 and not any(resume for _, resume in fakes.train_calls)
    assert len(fakes.eval_calls) == 13
    # Finished trainings drop their checkpoints (only a resume needs them); models stay.
    assert len(list(out.glob("train/*/final/model.json"))) == 12 and not list(out.glob("train/*/checkpoints"))


def test_paired_tests_match_aggregate_and_detect_effects(finished):
    _, _, summary = finished
    tests = {(t["a"], t["b"]): t for t in summary["tests"] if t["metric"] == "map"}
    # vs base for the 4 variants + C(4,2) pairs; rank_distance has no per-query values here.
    assert len(tests) == 4 + 6 and all(t["suite"] == "fakeqa" for t in tests.values())
    for (a, b), t in tests.items():
        assert {"a", "b", "suite", "metric", "delta", "p_value"} <= set(t)
        # The macro-weighted, seed-pooled delta is exactly the difference of the aggregate means.
        agg = summary["aggregate"]
        assert t["delta"] == pytest.approx(agg[a]["fakeqa"]["map"]["mean"] - agg[b]["fakeqa"]["map"]["mean"], abs=1e-9)
        assert t["delta_ci95"][0] <= t["delta"] <= t["delta_ci95"][1]
        assert t["p_holm"] >= t["p_value"]
    big = tests[("x-y", "base")]
    assert big["delta"] == pytest.approx(0.10, abs=0.01) and big["p_value"] < 0.001 and big["significant"]
    assert big["effect_size_dz"] > 1 and big["n_seeds"] == [3, 1] and big["n_queries"] == N_EN + N_DE
    # Hybrid α=0 and X-Y have the same true effect in the fake: no significant difference.
    same = tests[("hybrid α=0", "x-y")]
    assert abs(same["delta"]) < 0.01 and not same["significant"]


def test_report_and_plots(finished):
    out, _, _ = finished
    md = (out / "report.md").read_text()
    assert "## fakeqa" in md and "| (b) x-y | 3 |" in md
    assert "**Fake mAP** per source language" in md and "## α sweep" in md and "## Paired tests" in md
    # x-y beats base (letter a) significantly on map: its cell carries the superscript a.
    xy_row = next(l for l in md.splitlines() if l.startswith("| (b) x-y | 3 |"))
    assert "ᵃ" in xy_row.split("|")[3]
    for name in ("bars_fakeqa.png", "heatmap_fakeqa_map.png", "alpha_sweep.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    assert not (out / "plots" / "lambda_sweep.png").exists()  # one λ only: no sweep


def test_second_invocation_reuses_everything(finished):
    out, _, first = finished
    fakes = Fakes()
    summary = run_experiment(make_config(), out, **fakes.kwargs())
    assert fakes.train_calls == [] and fakes.eval_calls == []
    assert summary["counts"]["eval_reused"] == 13
    assert summary["aggregate"] == first["aggregate"]
    # Adding a suite evaluates only that suite; nothing is retrained.
    cfg = make_config(suites=[{"name": "fake", "label": "fakeqa"}, {"name": "fake", "label": "fake2"}])
    summary2 = run_experiment(cfg, out, **fakes.kwargs())
    assert fakes.train_calls == [] and fakes.eval_calls == ["fake2"] * 13
    assert summary2["aggregate"]["x-y"]["fake2"]["map"] == summary2["aggregate"]["x-y"]["fakeqa"]["map"]


def test_interrupted_grid_resumes_and_matches_uninterrupted(tmp_path, finished):
    _, _, reference = finished
    out = tmp_path / "out"
    fakes = Fakes()
    fakes.crash_train_once = {1}  # the first seed-1 training is killed midway

    def hook(event, run, suite):
        if event == "suite_done" and run.label == "hybrid α=0.5" and run.seed == 2:
            raise RuntimeError("simulated crash after an evaluation")

    with pytest.raises(KeyboardInterrupt):
        run_experiment(make_config(), out, **fakes.kwargs(hook=hook))
    assert [r for _, r in fakes.train_calls] == [False, False]  # x-y seed 0 done, seed 1 killed
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(make_config(), out, **fakes.kwargs(hook=hook))
    # The killed training was resumed (its dir existed without a done marker), not restarted.
    assert fakes.train_calls[2] == (fakes.train_calls[1][0], True)
    assert not any(r for _, r in fakes.train_calls[3:])
    n_evals = len(fakes.eval_calls)
    summary = run_experiment(make_config(), out, **fakes.kwargs())
    # Over the three invocations: 12 trainings finished + 1 killed attempt; 13 evaluations, none
    # repeated (the crashed run's finished suite is reused).
    assert len(fakes.train_calls) == 13
    assert len({name for name, _ in fakes.train_calls}) == 12
    assert len(fakes.eval_calls) == 13 and n_evals < 13
    assert summary["aggregate"] == reference["aggregate"]
    assert [t["p_value"] for t in summary["tests"]] == [t["p_value"] for t in reference["tests"]]


def test_merge_weights_share_training_and_give_lambda_curve(tmp_path):
    fakes = Fakes()
    cfg = make_config(grid={"strategies": ["hybrid"], "alphas": [0.5], "seeds": [0, 1], "merge_weights": [0.5, 1.0]})
    summary = run_experiment(cfg, tmp_path / "out", **fakes.kwargs())
    assert len(fakes.train_calls) == 2 and sorted(fakes.merge_calls) == [0.5, 0.5]
    agg = summary["aggregate"]
    full, half = agg["hybrid α=0.5"]["fakeqa"]["map"]["mean"], agg["hybrid α=0.5 λ=0.5"]["fakeqa"]["map"]["mean"]
    base = agg["base"]["fakeqa"]["map"]["mean"]
    assert base < half < full
    assert (tmp_path / "out" / "plots" / "lambda_sweep.png").stat().st_size > 1000
    assert "## λ sweep" in (tmp_path / "out" / "report.md").read_text()


def test_auto_merge_weight_is_chosen_once_per_training_and_reused(tmp_path):
    fakes = Fakes()
    choices = []

    def choose(base, tuned, train_dir, candidates, work_dir, *, merge_fn=None):
        choices.append((Path(train_dir).parent.name, list(candidates)))
        seed = json.loads((Path(tuned) / "model.json").read_text())["seed"]
        return {"weight": [0.25, 0.75][seed % 2], "by_weight": {}}  # differs by seed: the choice is per run

    cfg = make_config(
        grid={
            "strategies": ["x-y"],
            "seeds": [0, 1],
            "merge_weights": [1.0, "auto"],
            "auto_merge_weights": [0.25, 0.75],
        }
    )
    summary = run_experiment(cfg, tmp_path / "out", choose_merge_weight_fn=choose, **fakes.kwargs())
    assert choices == [("train", [0.25, 0.75])] * 2
    assert sorted(fakes.merge_calls) == [0.25, 0.75]
    auto_runs = [r for r in summary["runs"] if r["merge_weight"] == "auto"]
    assert sorted(r["merge_weight_chosen"] for r in auto_runs) == [0.25, 0.75]
    assert "x-y λ=auto" in summary["aggregate"] and summary["aggregate"]["x-y λ=auto"]["fakeqa"]
    run_experiment(cfg, tmp_path / "out", choose_merge_weight_fn=choose, **fakes.kwargs())
    assert len(choices) == 2 and len(fakes.merge_calls) == 2  # decided once, then reused
    with pytest.raises(ValueError, match="λ must be in"):
        make_config(grid={"strategies": ["x-y"], "merge_weights": ["auto"], "auto_merge_weights": [0.0, 0.5]})


def test_explicit_pairs_and_unknown_labels(tmp_path):
    fakes = Fakes()
    cfg = make_config(
        grid={"strategies": ["x-y", "hybrid"], "alphas": [0.5], "seeds": [0]},
        tests={"against_base": False, "pairs": [["hybrid alpha=0.5", "x-y"]], "n_permutations": 200},
    )
    summary = run_experiment(cfg, tmp_path / "a", **fakes.kwargs())
    assert [(t["a"], t["b"]) for t in summary["tests"]] == [("hybrid α=0.5", "x-y")]
    bad = make_config(tests={"pairs": [["hybrid α=0.9", "x-y"]]})
    with pytest.raises(PolyretError, match="no variant 'hybrid α=0.9'"):
        run_experiment(bad, tmp_path / "b", **fakes.kwargs())


def test_refuses_foreign_output_dir_and_unknown_suite(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("user data")
    with pytest.raises(PolyretError, match="was not written by polyret"):
        run_experiment(make_config(), foreign, **Fakes().kwargs())
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(PolyretError, match="unknown evaluation suite 'nope'"):
        run_experiment(make_config(suites=[{"name": "nope"}]), tmp_path / "x", **Fakes().kwargs())


def test_report_only_aggregates_partial_results(tmp_path):
    fakes = Fakes()
    out = tmp_path / "out"

    def hook(event, run, suite):
        if event == "run_start" and run.label == "hybrid α=0.5":
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        run_experiment(make_config(), out, **fakes.kwargs(hook=hook))
    summary = run_experiment(make_config(), out, report_only=True, **fakes.kwargs())
    complete = {r["variant"] for r in summary["runs"] if r["complete"]}
    assert complete == {"base", "x-y", "hybrid α=0"}
    assert summary["aggregate"]["hybrid α=0.5"]["fakeqa"] == {}
    assert (out / "report.md").is_file()
    with pytest.raises(PolyretError, match="not an experiment directory"):
        run_experiment(make_config(), tmp_path / "empty", report_only=True, **fakes.kwargs())


# ------------------------------------------------------------------------------------ adapters
def _toy_lareqa(rng):
    """MLQA-R-shaped toy: 3 languages, questions in 1-3 of them, unbalanced, non-parallel pools."""
    from polyret.data.lareqa import LareqaCandidate, LareqaDataset, LareqaQuestion

    langs = ["de", "en", "zh"]
    cands = [
        LareqaCandidate(l, f"{l} sentence {i}", f"{l} ctx", f"p{i // 3}", i % 3)
        for l, n in zip(langs, (7, 12, 5))
        for i in range(n)
    ]
    by_lang = {l: [i for i, c in enumerate(cands) if c.lang == l] for l in langs}
    questions, relevant = [], []
    for qid in range(15):
        present = [l for l in langs if rng.random() < 0.6] or ["en"]
        answer_langs = sorted(set(present) | ({"en"} if qid % 2 else set()))
        rel = [int(rng.choice(by_lang[l])) for l in answer_langs]
        for l in present:
            questions.append(LareqaQuestion(f"q{qid}", l, f"{l} question {qid}"))
            relevant.append(np.asarray(rel))
    return LareqaDataset("toy", questions, cands, relevant)


def test_lareqa_per_query_values_reproduce_the_evaluators_numbers():
    from polyret.evaluate.lareqa_eval import lareqa_result, score_lareqa
    from polyret.stats import macro_weights, paired_randomization_test

    rng = np.random.default_rng(0)
    ds = _toy_lareqa(rng)
    outs = []
    for seed in (1, 2):
        r = np.random.default_rng(seed)
        q, c = r.normal(size=(ds.n_questions, 8)), r.normal(size=(ds.n_candidates, 8))
        results, ranks = score_lareqa(q, c, ds, return_ranks=True)
        out = lareqa_result(results, ranks, ds)
        out.check_per_query()  # raises if any per-query array misses its headline number
        outs.append(out)
    assert {"mono.map", "cross.map", "multi.map", "multi.recall@10", "rank_distance"} <= set(outs[0].per_query)
    cross = outs[0].per_query["cross.map"]
    assert cross.groups.shape[1] == 2 and cross.clusters is not None
    # A question without an answer in Y is absent from X->Y.
    assert len(cross.values) < ds.n_questions * 2
    # A paired test between the two "models" has exactly the delta of their macro numbers.
    a, b = outs[0].per_query["cross.map"], outs[1].per_query["cross.map"]
    assert list(a.ids) == list(b.ids)
    t = paired_randomization_test(
        a.values,
        b.values,
        weights=macro_weights([tuple(g) for g in a.groups.tolist()]),
        clusters=a.clusters,
        n_permutations=200,
    )
    assert t.delta == pytest.approx(outs[0].metrics["cross.map"] - outs[1].metrics["cross.map"], abs=1e-12)
    # A broken per-query array is caught, not averaged silently.
    outs[0].per_query["multi.map"].values[0] += 0.5
    with pytest.raises(RuntimeError, match="multi.map"):
        outs[0].check_per_query()


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    from polyret.cli import main

    bad = tmp_path / "exp.yaml"
    bad.write_text("grid: {strategies: [x-z]}\nsuites: [{name: xnli}]\n")
    with pytest.raises(SystemExit) as e:
        main(["experiment", str(bad), "--out", str(tmp_path / "out"), "--no-progress"])
    assert e.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "exp.yaml: key 'grid.strategies.0': Input should be" in err and "Traceback" not in err
    good = tmp_path / "ok.yaml"
    good.write_text("grid: {strategies: [x-y]}\nsuites: [{name: xnli}]\n")
    with pytest.raises(SystemExit) as e:
        main(["experiment", str(good), "--out", str(tmp_path / "nothing-here"), "--report-only"])
    assert e.value.code == 2 and "not an experiment directory" in " ".join(capsys.readouterr().err.split())


def test_lareqa_suite_every_nth_paragraph_is_the_demo_subset(shared_data, tiny_model, tmp_path, monkeypatch):
    """The shipped paper-grid evaluates on the demo's subset: `every_nth_paragraph` in a lareqa suite."""
    from conftest import need
    from polyret.data.lareqa import load_lareqa
    from polyret.data.lareqa import every_nth_paragraph
    from polyret.experiment import SuiteConfig, SuiteContext
    from polyret.experiment.suites import lareqa_suite

    data = need(shared_data, "lareqa", "xquad-r")
    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))
    suite = SuiteConfig(name="lareqa", data=str(data), langs=["en", "de"], options={"every_nth_paragraph": 40})
    out = lareqa_suite(tiny_model, suite, tmp_path / "out", SuiteContext(config_dir=tmp_path, show_progress=False))
    want = every_nth_paragraph(load_lareqa(data, langs=["en", "de"]), 40)
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["n_questions"] == want.n_questions and res["n_candidates"] == want.n_candidates
    assert len(out.per_query["multi.map"].values) == want.n_questions


def test_alpha_sweep_puts_x_y_at_0_and_x_x_mono_at_1():
    from polyret.experiment.report import _sweep_groups

    def variant(strategy, alpha=None, base="m", lam=1.0):
        label = strategy if alpha is None else f"{strategy} α={alpha:g}"
        return {"label": label, "base_model": base, "strategy": strategy, "alpha": alpha, "merge_weight": lam}

    summary = {
        "variants": [
            variant("base", lam=None),
            variant("x-x-mono"),
            variant("x-y"),
            variant("x-x"),
            variant("hybrid", 0.25),
            variant("hybrid", 0.75),
        ]
    }
    assert _sweep_groups(summary, "alpha") == {
        ("m", 1.0): [(0.0, "x-y"), (0.25, "hybrid α=0.25"), (0.75, "hybrid α=0.75"), (1.0, "x-x-mono")]
    }
    # a Hybrid at α = 0 already is the α = 0 point; X-Y is not drawn on top of it
    summary["variants"].append(variant("hybrid", 0.0))
    assert [p for p in _sweep_groups(summary, "alpha")[("m", 1.0)] if p[0] == 0.0] == [(0.0, "hybrid α=0")]
    # no Hybrid in the grid: no α axis (the pure strategies alone are not a sweep)
    summary["variants"] = [v for v in summary["variants"] if v["strategy"] != "hybrid"]
    assert _sweep_groups(summary, "alpha") == {}
