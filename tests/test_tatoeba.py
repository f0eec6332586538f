"""Tatoeba bitext retrieval: reader, accuracy@1 (cross-checked with faiss), evaluation and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need
from polyret.data.tatoeba import available_tatoeba_languages, read_tatoeba, tatoeba_code
from polyret.errors import PolyretError
from polyret.evaluate.tatoeba import evaluate_tatoeba, retrieval_accuracy_at_1


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_accuracy_at_1_by_hand_and_against_faiss():
    import faiss

    # rows 0 and 1 retrieve each other's translation; row 2 finds its own
    q = unit(np.array([[1.0, 0.1, 0.0], [0.1, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    t = unit(np.array([[0.1, 1.0, 0.0], [1.0, 0.1, 0.0], [0.0, 0.2, 1.0]]))
    assert retrieval_accuracy_at_1(q, t) == pytest.approx(1 / 3)
    assert retrieval_accuracy_at_1(q, q) == 1.0

    rng = np.random.default_rng(0)
    src = unit(rng.normal(size=(300, 16)))
    tgt = unit(src + 0.35 * rng.normal(size=src.shape))
    index = faiss.IndexFlatIP(16)
    index.add(tgt)
    _, nn = index.search(src, 1)
    expected = float(np.mean(nn[:, 0] == np.arange(300)))
    assert 0.2 < expected < 1.0  # a non-trivial case
    assert retrieval_accuracy_at_1(src, tgt, chunk=64) == pytest.approx(expected)


def test_read_shared_tatoeba(shared_data):
    d = need(shared_data, "tatoeba")
    bt = read_tatoeba(d, "de")
    assert bt.lang == "deu" and len(bt) == 1000 and len(bt.other) == 1000
    assert len(read_tatoeba(d, "swh")) == 390
    assert {"deu", "swh", "urd", "cmn"} <= set(available_tatoeba_languages(d))
    assert tatoeba_code("zh") == "cmn" and tatoeba_code("kab") == "kab"


def test_tatoeba_reader_errors(tmp_path):
    (tmp_path / "tatoeba.xyz-eng.xyz").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "tatoeba.xyz-eng.eng").write_text("a\n", encoding="utf-8")
    with pytest.raises(PolyretError, match=r"\(2 lines\) and .*\(1 lines\) are not line-aligned"):
        read_tatoeba(tmp_path, "xyz")
    (tmp_path / "tatoeba.xyz-eng.eng").write_text("a\n\n", encoding="utf-8")
    with pytest.raises(PolyretError, match=r"tatoeba\.xyz-eng\.eng, line 2: blank line"):
        read_tatoeba(tmp_path, "xyz")
    with pytest.raises(PolyretError, match=r"Tatoeba language 'qqq': missing .*tatoeba\.qqq-eng\.qqq"):
        read_tatoeba(tmp_path, "qqq")


def _bitext_dir(tmp_path, shared_data, langs, n):
    """The first n lines of some real Tatoeba pairs (keeps tests fast)."""
    src = need(shared_data, "tatoeba")
    d = tmp_path / "tatoeba"
    d.mkdir()
    for code in langs:
        for side in (code, "eng"):
            name = f"tatoeba.{code}-eng.{side}"
            lines = (src / name).read_text(encoding="utf-8").splitlines()[:n]
            (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def test_evaluate_tatoeba_identical_sides_is_perfect(tiny_model, tmp_path):
    """With the same (distinct) sentences on both sides, any encoder retrieves every line exactly."""
    d = tmp_path / "tt"
    d.mkdir()
    sents = [f"sentence number {i} about topic {i * 7 % 13}" for i in range(40)]
    for side in ("abc", "eng"):
        (d / f"tatoeba.abc-eng.{side}").write_text("\n".join(sents) + "\n", encoding="utf-8")
    res = evaluate_tatoeba(tiny_model, d, ["abc", "zzz"], out_dir=tmp_path / "out", cache=False, show_progress=False)
    assert res["per_language"]["abc"] == {"tatoeba_code": "abc", "n": 40, "xx_to_en": 1.0, "en_to_xx": 1.0, "mean": 1.0}
    assert res["missing"] == ["zzz"] and res["mean"]["n_languages"] == 1
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["per_language"]["abc"]["n"] == 40
    assert "| abc | abc | 40 | 100.0 | 100.0 | 100.0 |" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(PolyretError, match="already holds a finished eval-tatoeba output"):
        evaluate_tatoeba(tiny_model, d, ["abc"], out_dir=tmp_path / "out", show_progress=False)
    with pytest.raises(PolyretError, match="no Tatoeba files"):
        evaluate_tatoeba(tiny_model, d, ["zzz"], show_progress=False)


def test_default_model_aligns_german_with_english(default_model, shared_data, tmp_path):
    d = _bitext_dir(tmp_path, shared_data, ["deu"], 100)
    res = evaluate_tatoeba(default_model, d, ["de"], show_progress=False)
    s = res["per_language"]["de"]
    # multilingual-e5-small reaches ~90%+ on full deu-eng; on 100 candidates it must be clearly high
    assert s["xx_to_en"] > 0.85 and s["en_to_xx"] > 0.85, s
