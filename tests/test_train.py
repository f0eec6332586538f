"""Training on the tiny model: outputs, frozen embeddings, held-out groups, exact resume, config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

from polyret.cli import main
from polyret.config import TrainConfig, load_train_config
from polyret.errors import PolyretError
from polyret.train import train
from train_helpers import tiny_overrides, write_synthetic


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    model_dir = root / "tiny"
    tiny_model.save(str(model_dir))
    data = write_synthetic(root / "groups.jsonl", n=60)
    return root, model_dir, data


@pytest.fixture(scope="module")
def run_a(setup):
    """One uninterrupted 6-step Hybrid run with batch logging and a 50/50 merge at the end."""
    root, model_dir, data = setup
    cfg = load_train_config(None, tiny_overrides(model_dir, data, log_batches=True, merge_weight=0.5))
    final = train(cfg, root / "A", show_progress=False)
    return root / "A", final, cfg


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_run_outputs_model_card_logs_and_merge(run_a, setup):
    out, final, cfg = run_a
    _, model_dir, data = setup
    assert final == out / "merged"
    model = SentenceTransformer(str(out / "model"), device="cpu")  # a normal sentence-transformers dir
    assert model.encode(["query: x"]).shape == (1, 32)
    card = (out / "model" / "README.md").read_text()
    for needle in (str(model_dir), str(data), "hybrid", "| 0.5 |", "τ = 0.05", "| 42 |", "6 × 4"):
        assert needle in card, needle
    meta = json.loads((out / "model" / "polyret_training.json").read_text())
    assert meta["steps_done"] == 6 and meta["summary"]["strategy"] == "hybrid" and meta["train_groups"] == 48
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["steps"] == 6
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in log if "eval_loss" in r] == [2, 4, 6]
    assert all(r["loss"] > 0 for r in log if "loss" in r)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert yaml.safe_load((out / "config.yaml").read_text())["strategy"] == "hybrid"
    # merged = the average of base and tuned; its card records λ
    base, tuned, merged = _weights(model_dir), _weights(out / "model"), _weights(out / "merged")
    for k in base:
        if base[k].is_floating_point():
            torch.testing.assert_close(merged[k], 0.5 * base[k] + 0.5 * tuned[k], rtol=1e-5, atol=1e-6)
    assert "λ = 0.5" in (out / "merged" / "README.md").read_text()


def test_word_embeddings_frozen_and_the_rest_trained(run_a, setup):
    out, _, _ = run_a
    base, tuned = _weights(setup[1]), _weights(out / "model")
    emb = [k for k in base if "word_embeddings" in k]
    assert emb and all(torch.equal(base[k], tuned[k]) for k in emb)
    moved = [k for k in base if base[k].is_floating_point() and not torch.equal(base[k], tuned[k])]
    assert any("encoder.layer" in k for k in moved)


def test_batches_follow_the_strategy_and_never_touch_held_out_groups(run_a):
    out, _, _ = run_a
    held_out = {json.loads(l)["id"] for l in (out / "validation_groups.jsonl").read_text().splitlines()}
    assert len(held_out) == 12
    batches = [json.loads(l) for l in (out / "batch_log.rank0.jsonl").read_text().splitlines()]
    assert [b["step"] for b in batches] == [1, 2, 3, 4, 5, 6]
    for b in batches:
        assert b["batch_type"] in ("x-x-mono", "x-y")  # hybrid = X-X-mono or X-Y per batch
        assert len(set(b["groups"])) == b["size"] == 4  # group-aware: one row per group
        assert not held_out & set(b["groups"])
        if b["batch_type"] == "x-x-mono":
            assert b["query_langs"] == b["passage_langs"] == [b["lang"]]


def test_resume_ends_at_the_same_weights(run_a, setup, capsys):
    """Simulate a crash after step 2: keep only checkpoint-2, resume through the CLI, compare."""
    out, _, _ = run_a
    root = setup[0]
    b = root / "B"
    shutil.copytree(out, b)
    for name in ("checkpoints/checkpoint-4", "checkpoints/checkpoint-6", "model", "merged", "run.json"):
        p = b / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    main(["train", "--out", str(b), "--resume", "--no-progress"])
    assert capsys.readouterr().out.strip().endswith(str(b / "merged"))
    run = json.loads((b / "run.json").read_text())
    assert run["resumed_from"].endswith("checkpoint-2") and run["steps_this_invocation"] == 4
    a_w, b_w = _weights(out / "model"), _weights(b / "model")
    assert a_w.keys() == b_w.keys()
    assert all(torch.equal(a_w[k], b_w[k]) for k in a_w)


def test_run_dir_is_never_overwritten_silently(run_a):
    out, _, cfg = run_a
    with pytest.raises(PolyretError, match="already holds a finished train output"):
        train(cfg, out, show_progress=False)
    other = cfg.model_copy(update={"strategy": "x-y"})
    with pytest.raises(PolyretError, match="differs.*strategy"):
        train(other, out, resume=True, show_progress=False)
    assert train(cfg, out, resume=True) == out / "merged"  # a complete run: resume is a no-op


def test_config_file_errors_name_file_and_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("strategy: hybrid\nalfa: 0.3\n")
    with pytest.raises(PolyretError, match=r"c\.yaml: unknown key 'alfa'"):
        load_train_config(f, {})
    f.write_text("alpha: 1.5\n")
    with pytest.raises(PolyretError, match=r"c\.yaml: key 'alpha'"):
        load_train_config(f, {})
    f.write_text("strategy: x-z\n")
    with pytest.raises(PolyretError, match="key 'strategy'"):
        load_train_config(f, {})
    f.write_text("loss: eq1\n")
    with pytest.raises(PolyretError, match="hard negatives"):
        load_train_config(f, {})
    f.write_text("- a\n- b\n")
    with pytest.raises(PolyretError, match="mapping"):
        load_train_config(f, {})
    with pytest.raises(PolyretError, match="not found"):
        load_train_config(tmp_path / "missing.yaml", {})


def test_cli_overrides_beat_the_file_and_relative_data_is_next_to_it(tmp_path):
    (tmp_path / "g.jsonl").write_text("")
    f = tmp_path / "c.yaml"
    f.write_text("strategy: x-y\nsteps: 7\nalpha: 0.3\ndata: [g.jsonl]\n")
    cfg = load_train_config(f, {"steps": 9, "alpha": None, "strategy": "hybrid"})
    assert (cfg.steps, cfg.alpha, cfg.strategy) == (9, 0.3, "hybrid")
    assert cfg.data == [str(tmp_path / "g.jsonl")]
    assert TrainConfig().temperature == 0.05 and TrainConfig().loss == "in-batch"
    with pytest.raises(PolyretError, match="not a config key"):
        load_train_config(f, {"stepz": 3})


def test_shipped_configs_load():
    root = Path(__file__).resolve().parents[1] / "configs"
    quick = load_train_config(root / "quick.yaml", {})
    assert (quick.model, quick.strategy, quick.alpha, quick.data) == (
        "default",
        "hybrid",
        0.5,
        ["mlqa-test", "xnli-align", "tatoeba-align"],
    )
    assert (quick.unit, quick.answerless, quick.negatives, quick.n_negatives) == (
        "sentence",
        "overlap",
        "same-paragraph",
        0,
    )
    assert (quick.teacher_weight, quick.teacher_cross, quick.language_correction) == (100.0, 100.0, "center-both")
    assert quick.validation_sources == ["mlqa-test", "xnli-align"]
    v1 = load_train_config(root / "quick-v1.yaml", {})  # the recipe the alignment experiments report
    assert (v1.unit, v1.teacher_weight) == ("paragraph", 10.0)
    paper = load_train_config(root / "paper.yaml", {})
    assert (paper.optimizer, paper.lr, paper.weight_decay, paper.batch_size) == ("adamw_torch", 3e-5, 0.01, 100)
    assert (paper.device, paper.bf16, paper.keep_best, paper.early_stopping_patience) == ("auto", "auto", True, 3)
    from polyret.train_args import validate_trainer_args

    assert validate_trainer_args(paper.trainer_args) == {"report_to": "none"}


def test_too_few_groups_is_a_clear_error_before_any_write(setup, tmp_path):
    _, model_dir, _ = setup
    small = write_synthetic(tmp_path / "small.jsonl", n=16)
    cfg = load_train_config(None, tiny_overrides(model_dir, small, batch_size=8, validation_groups=4))
    with pytest.raises(PolyretError, match="too few"):
        train(cfg, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(PolyretError, match="not found"):
        train(cfg.model_copy(update={"data": ["no-such-set"]}), tmp_path / "run2", show_progress=False)


def _pool_map_by_hand(model_dir: Path, groups_file: Path) -> dict[str, float]:
    """Mono and Multi mAP of the held-out groups computed without polyret: sentence-transformers
    embeddings, every candidate ranked by dot product, average precision by an explicit loop;
    per-language means, then their macro mean (LAReQA's definitions)."""
    import numpy as np

    rows = [json.loads(line) for line in groups_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = SentenceTransformer(str(model_dir), device="cpu")
    cands = [(i, lang, text) for i, r in enumerate(rows) for lang, text in r["positives"].items()]
    c = model.encode([t for _, _, t in cands], prompt_name="passage", normalize_embeddings=True)

    def ap(scores, relevant):
        hits, total = 0, 0.0
        for rank, j in enumerate(sorted(range(len(scores)), key=lambda j: -scores[j]), 1):
            if j in relevant:
                hits += 1
                total += hits / rank
        return total / len(relevant)

    per_lang: dict[str, dict[str, list[float]]] = {}
    for i, r in enumerate(rows):
        for lang, text in r["queries"].items():
            q = model.encode([text], prompt_name="query", normalize_embeddings=True)[0]
            scores = c @ q
            mine = per_lang.setdefault(lang, {"multi": [], "mono": []})
            mine["multi"].append(ap(list(scores), {j for j, (g, _, _) in enumerate(cands) if g == i}))
            same = [j for j, (_, l, _) in enumerate(cands) if l == lang]
            mine["mono"].append(ap([scores[j] for j in same], {k for k, j in enumerate(same) if cands[j][0] == i}))
    return {f"{kind}.map": float(np.mean([np.mean(v[kind]) for v in per_lang.values()])) for kind in ("mono", "multi")}


def test_validation_pool_and_lambda_rule(run_a, setup):
    from polyret.experiment.demo import target_check
    from polyret.validation import pool_metrics, select_merge_weight, validation_pool

    out, _, _ = run_a
    pool = validation_pool(out)
    assert pool.n_questions == 12 * 3 and pool.n_candidates == 12 * 3  # 12 held-out groups x 3 languages
    m = pool_metrics(out / "model", pool)
    expected = _pool_map_by_hand(out / "model", out / "validation_groups.jsonl")
    assert m["mono.map"] == pytest.approx(expected["mono.map"], abs=1e-6)
    assert m["multi.map"] == pytest.approx(expected["multi.map"], abs=1e-6)
    assert m["rank_distance"] >= 0
    untrained = {"mono.map": 0.80, "multi.map": 0.3}
    by_w = {
        1.0: {"mono.map": 0.70, "multi.map": 0.50},  # best Multi but Mono lost
        0.75: {"mono.map": 0.795, "multi.map": 0.48},
        0.5: {"mono.map": 0.81, "multi.map": 0.40},
    }
    assert select_merge_weight(untrained, by_w) == 0.75
    assert (
        select_merge_weight(
            untrained, {1.0: {"mono.map": 0.6, "multi.map": 0.5}, 0.5: {"mono.map": 0.7, "multi.map": 0.4}}
        )
        == 0.5
    )
    untrained = {"mono": 0.80, "cross": 0.6, "multi": 0.3, "rd": 1000}
    assert target_check(untrained, {"mono": 0.79, "cross": 0.65, "multi": 0.51, "rd": 400}) == {
        "mono_kept": False,
        "rd_halved": True,
        "cross_up": True,
    }
    corrected = {"mono": 0.79, "cross": 0.68, "multi": 0.54, "rd": 443}
    assert target_check(untrained, {"mono": 0.801, "cross": 0.70, "multi": 0.53, "rd": 300}, corrected) == {
        "mono_kept": True,
        "rd_halved": True,
        "cross_up": True,
        "mono_above_base+correction": True,
        "cross_above_base+correction": True,
        "multi_above_base+correction": False,
    }


def test_choose_merge_weight_applies_the_rule_to_real_merges(run_a, setup, tmp_path):
    """What `grid.merge_weights: [auto]` runs: merge at each candidate, score on the held-out pool.
    Expected values by hand: each model's pool mAP from `_pool_map_by_hand` (λ = 1 is the tuned model,
    λ = 0.5 the run's own merged/ dir, the same merge), and the λ rule applied to those numbers here."""
    from polyret.validation import choose_merge_weight

    out, _, _ = run_a
    _, model_dir, _ = setup
    choice = choose_merge_weight(str(model_dir), out / "model", out, [0.5, 1.0], tmp_path / "work")
    assert set(choice["by_weight"]) == {"0.5", "1.0"} and not (tmp_path / "work").exists()
    groups = out / "validation_groups.jsonl"
    untrained = _pool_map_by_hand(model_dir, groups)
    by_hand = {1.0: _pool_map_by_hand(out / "model", groups), 0.5: _pool_map_by_hand(out / "merged", groups)}
    for key in ("mono.map", "multi.map"):
        assert choice["untrained"][key] == pytest.approx(untrained[key], abs=1e-6)
        for w, m in by_hand.items():
            assert choice["by_weight"][str(w)][key] == pytest.approx(m[key], abs=1e-6)
    # The rule: the best Multi among weights whose Mono is within 0.01 of the untrained model's,
    # else the best Mono.
    keep = [w for w, m in by_hand.items() if m["mono.map"] >= untrained["mono.map"] - 0.01]
    expected = (
        max(keep, key=lambda w: by_hand[w]["multi.map"]) if keep else max(by_hand, key=lambda w: by_hand[w]["mono.map"])
    )
    assert choice["weight"] == expected
    assert by_hand[0.5] != by_hand[1.0]


def test_xquad_subset_keeps_whole_paragraphs_in_every_language(shared_data):
    from conftest import need
    from polyret.data.lareqa import load_lareqa
    from polyret.data.lareqa import every_nth_paragraph as subset_paragraphs

    full = load_lareqa(need(shared_data, "lareqa", "xquad-r"), langs=["en", "de"])
    sub = subset_paragraphs(full, 10)
    pids = sorted({c.paragraph_id for c in full.candidates})
    assert {c.paragraph_id for c in sub.candidates} == set(pids[::10])
    for q, rel in zip(sub.questions, sub.relevant):
        assert {sub.candidates[i].lang for i in rel} == {"en", "de"}  # one answer sentence per language
    assert 0 < sub.n_questions < full.n_questions


def test_quick_train_demo_writes_the_before_after_table(setup, shared_data, tmp_path, monkeypatch):
    """The function `make demo` calls, on the tiny model and a small XQuAD-R slice."""
    from conftest import need
    from polyret.experiment.demo import quick_train_demo

    need(shared_data, "lareqa", "xquad-r", "en.json")
    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))  # keep the user's embedding cache clean
    _, model_dir, data = setup
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(tiny_overrides(model_dir, data, merge_weight=0.5)))
    report = quick_train_demo(
        tmp_path / "demo", config, xquad_langs=["en", "de"], every_nth_paragraph=40, show_progress=False
    )
    assert [r["model"].split(" ")[0] for r in report["rows"]] == ["untrained", "hybrid", "merged"] * 2
    assert [r["model"].endswith("raw") for r in report["rows"]] == [True] * 3 + [False] * 3
    for row in report["rows"]:
        assert 0 < row["mono"] <= 1 and 0 < row["multi"] <= 1 and row["rd"] >= 0
    raw_base, corrected_base = report["rows"][0], report["rows"][3]
    assert corrected_base["multi"] != raw_base["multi"]  # the correction was applied to the second block
    assert set(report["target"]) == {
        "mono_kept",
        "rd_halved",
        "cross_up",
        "mono_above_base+correction",
        "cross_above_base+correction",
        "multi_above_base+correction",
    }
    md = (tmp_path / "demo" / "report.md").read_text()
    assert md.count("\n| ") == 7 and "Targets" in md  # header + 6 rows
    assert json.loads((tmp_path / "demo" / "report.json").read_text())["rows"] == report["rows"]
