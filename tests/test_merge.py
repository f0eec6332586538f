"""Weight-space merge θ = (1 − λ)θ_base + λθ_tuned on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from polyret.cli import main
from polyret.errors import PolyretError
from polyret.merge import MERGE_META, merge_models


@pytest.fixture(scope="module")
def base_and_tuned(tiny_model, tmp_path_factory):
    """The tiny model saved as 'base', and a copy with every float weight shifted as 'tuned'."""
    root = tmp_path_factory.mktemp("merge")
    base_dir, tuned_dir = root / "base", root / "tuned"
    tiny_model.save(str(base_dir))
    tuned = SentenceTransformer(str(base_dir), device="cpu")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    tuned.save(str(tuned_dir))
    return base_dir, tuned_dir


def _state(path: Path) -> dict[str, torch.Tensor]:
    return SentenceTransformer(str(path), device="cpu").state_dict()


def test_merge_is_the_convex_combination_and_card_records_lambda(base_and_tuned, tmp_path):
    base_dir, tuned_dir = base_and_tuned
    out = merge_models(str(base_dir), str(tuned_dir), 0.3, tmp_path / "m")
    b, t, m = _state(base_dir), _state(tuned_dir), _state(out)
    assert set(m) == set(b)
    n_float = 0
    for k in b:
        if b[k].is_floating_point():
            n_float += 1
            torch.testing.assert_close(m[k], 0.7 * b[k] + 0.3 * t[k], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(m[k], b[k])
    assert n_float > 5
    meta = json.loads((out / MERGE_META).read_text())
    assert meta["weight"] == 0.3 and meta["base"] == str(base_dir) and meta["tuned"] == str(tuned_dir)
    assert "λ = 0.3" in (out / "README.md").read_text()


def test_lambda_zero_and_one_give_back_base_and_tuned(base_and_tuned, tmp_path):
    base_dir, tuned_dir = base_and_tuned
    texts = ["query: wo liegt Berlin", "passage: Berlin ist die Hauptstadt."]
    for lam, ref in ((0.0, base_dir), (1.0, tuned_dir)):
        out = merge_models(base_dir, tuned_dir, lam, tmp_path / f"m{lam}")
        got = SentenceTransformer(str(out), device="cpu").encode(texts)
        want = SentenceTransformer(str(ref), device="cpu").encode(texts)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_in_memory_models_are_left_unchanged(base_and_tuned, tmp_path):
    base_dir, tuned_dir = base_and_tuned
    tuned = SentenceTransformer(str(tuned_dir), device="cpu")
    before = {k: v.clone() for k, v in tuned.state_dict().items()}
    merge_models(SentenceTransformer(str(base_dir), device="cpu"), tuned, 0.5, tmp_path / "m")
    assert all(torch.equal(before[k], v) for k, v in tuned.state_dict().items())


def test_merge_refuses_bad_input(base_and_tuned, tmp_path, tiny_model):
    base_dir, tuned_dir = base_and_tuned
    with pytest.raises(PolyretError, match=r"\[0, 1\]"):
        merge_models(base_dir, tuned_dir, 1.5, tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("mine")
    with pytest.raises(PolyretError, match="not written by polyret"):
        merge_models(base_dir, tuned_dir, 0.5, tmp_path / "taken")
    assert (tmp_path / "taken" / "f").read_text() == "mine"
    # a different architecture (3 layers instead of 2)
    from polyret.model import build_tiny_model

    other = build_tiny_model(tmp_path / "other", layers=3)
    with pytest.raises(PolyretError, match="different parameters"):
        merge_models(base_dir, other, 0.5, tmp_path / "y")
    with pytest.raises(PolyretError, match="could not be loaded|not a loadable|modules.json is missing"):
        merge_models(base_dir, tmp_path / "taken", 0.5, tmp_path / "z")


def test_merge_cli(base_and_tuned, tmp_path, capsys):
    base_dir, tuned_dir = base_and_tuned
    out = tmp_path / "cli"
    main(["merge", "--base", str(base_dir), "--tuned", str(tuned_dir), "--weight", "0.5", "--out", str(out)])
    assert capsys.readouterr().out.strip().endswith(str(out))
    assert json.loads((out / MERGE_META).read_text())["weight"] == 0.5
    with pytest.raises(SystemExit) as e:  # existing --out without --overwrite: one clear error, exit 2
        main(["merge", "--base", str(base_dir), "--tuned", str(tuned_dir), "--weight", "0.5", "--out", str(out)])
    assert e.value.code == 2
    assert "already holds a finished merged-model output" in " ".join(capsys.readouterr().err.split())  # rich wraps
