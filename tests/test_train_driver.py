"""`train` as a driver: every input checked before the first step, the default keep-best path with
early stopping, `train --overwrite` end to end, and `encode` with the correction a run stored."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

from polyret.cli import main
from polyret.config import load_train_config
from polyret.train import train
from train_helpers import tiny_overrides, write_synthetic


@pytest.fixture(scope="module")
def base(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("driver")
    model_dir = root / "tiny"
    tiny_model.save(str(model_dir))
    return root, model_dir, write_synthetic(root / "groups.jsonl", n=60)


@pytest.fixture(scope="module")
def finished_run(base):
    """A finished 2-step run without a correction."""
    root, model_dir, data = base
    train(load_train_config(None, tiny_overrides(model_dir, data, steps=2)), root / "plain", show_progress=False)
    return root / "plain"


def _tree(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (hidden ones too) -> sha256 of its bytes ('dir' for folders)."""
    return {
        str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_missing_correction_data_is_one_line_before_training_and_nothing_is_touched(
    base, finished_run, tmp_path, monkeypatch, capsys
):
    """The correction is fitted on XNLI dev after the last step: without XNLI the run must fail before
    the first step, in seconds, and leave its out folder and a finished sibling as they were."""
    _, model_dir, data = base
    runs = tmp_path / "runs"
    shutil.copytree(finished_run, runs / "A")
    shutil.copytree(finished_run, runs / "B")  # a finished sibling
    no_xnli = tmp_path / "data"  # a data folder without xnli/ (the training data is given by path)
    no_xnli.mkdir()
    monkeypatch.setenv("POLYRET_DATA", str(no_xnli))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_overrides(model_dir, data, steps=2, language_correction="center")))
    before = _tree(runs)
    for out_args in (["--out", str(runs / "A"), "--overwrite"], ["--out", str(runs / "new")]):
        t0 = time.monotonic()
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--config", str(config), "--no-progress", *out_args])
        seconds = time.monotonic() - t0
        printed = capsys.readouterr()
        lines = [line for line in (printed.out + printed.err).splitlines() if line.strip()]
        assert exit_.value.code == 2 and seconds < 30, (exit_.value.code, seconds)
        assert len(lines) == 1 and "language_correction='center'" in lines[0] and "xnli" in lines[0], lines
        assert _tree(runs) == before, out_args  # no new folder, no temp sibling, no file changed


def test_keep_best_with_early_stopping_keeps_the_best_checkpoint(base, tmp_path):
    """The defaults keep_best: true + early stopping. At lr 1e-2 the held-out loss falls for three
    evaluations and then rises: training stops there (patience 1) and model/ holds the best step's weights."""
    _, model_dir, data = base
    cfg = load_train_config(
        None, tiny_overrides(model_dir, data, steps=20, lr=1e-2, keep_best=True, early_stopping_patience=1)
    )
    out = tmp_path / "run"
    train(cfg, out, show_progress=False)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r]
    best_step, best_loss = min(evals, key=lambda e: e[1])
    # patience 1: the first evaluation that does not improve on the best ends the run
    assert [s for s, _ in evals] == list(range(2, best_step + 3, 2)) and evals[-1][1] >= best_loss
    assert best_step < 18  # stopped early, not at max steps
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == best_step + 2
    assert run["best_checkpoint"] == str(out / "checkpoints" / f"checkpoint-{best_step}")
    assert run["best_validation_loss"] == pytest.approx(best_loss)
    best, last = (
        _weights(out / "checkpoints" / f"checkpoint-{best_step}"),
        _weights(out / "checkpoints" / f"checkpoint-{best_step + 2}"),
    )
    saved = _weights(out / "model")
    assert all(torch.equal(saved[k], best[k]) for k in best)
    assert any(not torch.equal(saved[k], last[k]) for k in last)  # not simply the last step's weights


def test_train_overwrite_replaces_a_finished_run_end_to_end(base, finished_run, tmp_path, capsys):
    """`polyret train --overwrite` onto a finished run: the new run (another seed) replaces it whole,
    nothing of the old one stays, and no temporary sibling is left."""
    _, model_dir, data = base
    runs = tmp_path / "runs"
    shutil.copytree(finished_run, runs / "A")
    (runs / "A" / "checkpoints" / "checkpoint-2" / "left-by-the-old-run").write_text("x")
    old_weights = _weights(runs / "A" / "model")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_overrides(model_dir, data, steps=4, seed=7)))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(config), "--out", str(runs / "A"), "--no-progress"])
    assert exit_.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
    main(["train", "--config", str(config), "--out", str(runs / "A"), "--overwrite", "--no-progress"])
    assert capsys.readouterr().out.strip().endswith(str(runs / "A" / "model"))
    assert sorted(p.name for p in runs.iterdir()) == ["A"]
    run = json.loads((runs / "A" / "run.json").read_text())
    assert (run["status"], run["steps"], run["config"]["seed"]) == ("complete", 4, 7)
    assert run["final_model"] == str(runs / "A" / "model")  # named where it lives, not the temp folder
    assert yaml.safe_load((runs / "A" / "config.yaml").read_text())["seed"] == 7
    assert sorted(p.name for p in (runs / "A" / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert not (runs / "A" / "checkpoints" / "checkpoint-2" / "left-by-the-old-run").exists()
    assert json.loads((runs / "A" / ".polyret-output.json").read_text())["complete"] is True
    new_weights = _weights(runs / "A" / "model")
    assert any(not torch.equal(old_weights[k], new_weights[k]) for k in old_weights)


def test_encode_applies_the_correction_a_training_run_stored(base, shared_data, tmp_path, capsys):
    """A run with language_correction: center stores its statistics in model/; `polyret encode` then
    subtracts the stored mean passage of the text's language from passages (by hand here: numpy on
    stats.npz and sentence-transformers' own embeddings) and leaves queries as they are."""
    from conftest import need

    need(shared_data, "xnli")
    _, model_dir, data = base
    out = tmp_path / "run"
    train(
        load_train_config(None, tiny_overrides(model_dir, data, steps=2, language_correction="center")),
        out,
        show_progress=False,
    )
    stored = out / "model" / "language_correction"
    assert json.loads((stored / "correction.json").read_text())["method"] == "center"
    de_mean = np.load(stored / "stats.npz")["de/passage_mean"]
    texts = ["Der Fluss fließt durch die Stadt.", "Eine Burg steht auf dem Berg."]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    st = SentenceTransformer(str(out / "model"), device="cpu")
    for kind, expected in (
        ("passage", st.encode(texts, prompt_name="passage", normalize_embeddings=True) - de_mean),
        ("query", st.encode(texts, prompt_name="query", normalize_embeddings=True)),
    ):
        npy = tmp_path / f"{kind}.npy"
        main(
            [
                "encode",
                "--model",
                str(out / "model"),
                "--input",
                str(tmp_path / "in.txt"),
                "--kind",
                kind,
                "--lang",
                "de",
                "--out",
                str(npy),
            ]
        )
        printed = capsys.readouterr()
        assert "language correction: center" in printed.out + printed.err
        np.testing.assert_allclose(np.load(npy), expected, atol=1e-4)  # batching differs from ST's: ~3e-5
    assert np.abs(de_mean).max() > 1e-2  # the correction moved the passages by far more than the tolerance
