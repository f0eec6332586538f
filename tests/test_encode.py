"""Encoding API, its on-disk cache, and the `polyret encode` command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from polyret.encode import EmbeddingCache, encode_texts, model_id, read_encode_input
from polyret.errors import PolyretError

TEXTS = ["short", "a somewhat longer sentence about retrieval", "Ein deutscher Satz.", "短い文", "short"]


def test_order_norm_and_prompt(tiny_model):
    # fp32 pinned: the reference below is fp32, and CPUs with native bf16 would autocast by default.
    e = encode_texts(tiny_model, TEXTS, "passage", bf16=False, show_progress=False)
    assert e.shape == (5, tiny_model.get_embedding_dimension()) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e[0], e[4], atol=1e-6)  # same text, same vector, whatever the batch order
    single = encode_texts(tiny_model, [TEXTS[1]], "passage", bf16=False, show_progress=False)
    np.testing.assert_allclose(e[1], single[0], atol=1e-5)
    q = encode_texts(tiny_model, TEXTS[:1], "query", bf16=False, show_progress=False)
    assert not np.allclose(q[0], e[0], atol=1e-4)  # the prompt changes the input
    ref = tiny_model.encode(["passage: " + t for t in TEXTS], normalize_embeddings=True)
    np.testing.assert_allclose(e, ref, atol=1e-5)


def test_batches_group_texts_of_equal_token_count(tiny_model, monkeypatch):
    """Texts are batched by exact token count (not characters), and come back in input order."""
    rng = np.random.default_rng(0)
    words = ["alpha", "Bücher", "検索", "مرحبا", "x", "retrieval"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 12, size=23)]
    seen: list[list[int]] = []
    real = type(tiny_model).encode

    def spy(self, sentences, *a, **k):
        seen.append([len(x) for x in self.tokenizer(["passage: " + t for t in sentences])["input_ids"]])
        return real(self, sentences, *a, **k)

    monkeypatch.setattr(type(tiny_model), "encode", spy)
    e = encode_texts(tiny_model, texts, "passage", batch_size=4, bf16=False, show_progress=False)
    assert [len(b) for b in seen] == [4] * 5 + [3]
    flat = [n for b in seen for n in b]
    assert flat == sorted(flat)  # every batch holds neighbours in token count: minimal padding
    monkeypatch.undo()
    ref = tiny_model.encode(["passage: " + t for t in texts], normalize_embeddings=True)
    np.testing.assert_allclose(e, ref, atol=1e-5)


def test_cache_skips_encoding(tiny_model, tmp_path, monkeypatch):
    first = encode_texts(tiny_model, TEXTS, "query", cache=tmp_path, show_progress=False)
    calls = []
    import polyret.encode as enc

    real = enc._raw_encode
    monkeypatch.setattr(
        enc, "_raw_encode", lambda m, texts, *a, **k: calls.append(list(texts)) or real(m, texts, *a, **k)
    )
    again = encode_texts(tiny_model, TEXTS + ["new text"], "query", cache=tmp_path, show_progress=False)
    assert calls == [["new text"]]  # only the unseen text was encoded
    np.testing.assert_allclose(again[:5], first, atol=1e-6)
    other_kind = encode_texts(tiny_model, TEXTS[:1], "passage", cache=tmp_path, show_progress=False)
    assert len(calls) == 2 and not np.allclose(other_kind[0], first[0])


def test_store_survives_torn_write(tmp_path):
    store = EmbeddingCache(tmp_path, dim=4)
    store.put(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    with open(tmp_path / "vectors.f32", "ab") as f:  # a crash after writing vectors, before keys
        f.write(np.ones(4, np.float32).tobytes())
    found, vecs = store.get(["a", "b", "c"])
    assert found.tolist() == [True, True, False]
    store.put(["c"], np.full((1, 4), 2, np.float32))
    found, vecs = store.get(["c", "a"])
    np.testing.assert_array_equal(vecs, [[2, 2, 2, 2], [1, 0, 0, 0]])


def test_model_id_changes_with_weights(tiny_model):
    import torch

    before = model_id(tiny_model)
    assert model_id(tiny_model) == before
    p = next(tiny_model.parameters())
    with torch.no_grad():
        p.add_(1.0)
    try:
        assert model_id(tiny_model) != before
    finally:
        with torch.no_grad():
            p.sub_(1.0)


def test_read_input_formats_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\n", encoding="utf-8")
    assert read_encode_input(tmp_path / "a.txt") == ["one", "two"]
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n{"text": "y"}\n', encoding="utf-8")
    assert read_encode_input(tmp_path / "b.jsonl") == ["x", "y"]
    (tmp_path / "c.jsonl").write_text('{"text": "x"}\n{"body": "y"}\n', encoding="utf-8")
    with pytest.raises(PolyretError, match=r"c.jsonl:2: record has no string field 'text'"):
        read_encode_input(tmp_path / "c.jsonl")
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(PolyretError, match=r"d.jsonl line 2 is not valid JSON"):
        read_encode_input(tmp_path / "d.jsonl")
    (tmp_path / "e.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(PolyretError, match="empty"):
        read_encode_input(tmp_path / "e.txt")
    with pytest.raises(PolyretError, match="no such input"):
        read_encode_input(tmp_path / "missing.txt")


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "polyret", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_encode_cli(tiny_model, tmp_path):
    model_dir = tmp_path / "m"
    tiny_model.save(str(model_dir))
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    out = tmp_path / "out.npy"
    r = _cli("encode", "--model", str(model_dir), "--input", str(inp), "--kind", "query", "--out", str(out))
    assert r.returncode == 0, r.stderr
    e = np.load(out)
    np.testing.assert_allclose(e, encode_texts(tiny_model, TEXTS, "query", show_progress=False), atol=1e-5)
    # Never overwrite without asking; errors are one line, no traceback.
    r = _cli("encode", "--model", str(model_dir), "--input", str(inp), "--out", str(out))
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    r = _cli("encode", "--model", str(model_dir), "--input", str(empty), "--out", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "empty" in r.stderr and "Traceback" not in r.stderr
