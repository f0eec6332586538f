"""The correction as a sentence-transformers module: a plain `SentenceTransformer(dir)` (loaded in a
separate process where polyret cannot be imported, so the code stored in the directory is what
runs) gives polyret's corrected embeddings, for queries and passages, language given or inferred."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from polyret.correction import RECIPES, LanguageCorrection, fit_model_correction, infer_languages, resolve_correction
from polyret.correction_st import MODULE_FILE, MODULE_TYPE, has_correction_module, install_correction_module
from polyret.encode import encode_texts, model_id
from polyret.model import load_model

TEXTS = {
    "de": [
        "Wo liegt der Bahnhof?",
        "Der Hund schläft im Garten.",
        "Wir fahren morgen nach Berlin.",
        "Das Wetter ist heute schön.",
        "Ich lese ein Buch über Geschichte.",
    ],
    "en": [
        "Where is the train station?",
        "The dog sleeps in the garden.",
        "We drive to Berlin tomorrow.",
        "The weather is nice today.",
        "I am reading a book about history.",
    ],
    "zh": ["火车站在哪里？", "狗在花园里睡觉。", "我们明天开车去柏林。", "今天天气很好。", "我在读一本关于历史的书。"],
}
# The child process: polyret made unimportable, the model loaded the plain way.
CHILD = textwrap.dedent("""
    import sys, json, numpy as np
    sys.modules["polyret"] = None  # any `import polyret...` now fails
    from sentence_transformers import SentenceTransformer

    def encode_all(m, texts, out):
        res = {}
        for lang, items in texts.items():
            res[f"q-{lang}"] = m.encode_query(items, language=lang)
            res[f"p-{lang}"] = m.encode_document(items, language=lang)
        allt = [t for items in texts.values() for t in items]
        res["q-inferred"] = m.encode_query(allt)
        res["p-inferred"] = m.encode_document(allt)
        res["plain-encode"] = m.encode(allt, prompt_name="passage")
        np.savez(out, **res)

    texts = json.loads(sys.argv[1])
    for model_dir, out in zip(sys.argv[2::2], sys.argv[3::2]):
        m = SentenceTransformer(model_dir, device="cpu", trust_remote_code=True)
        assert type(m[-1]).__module__.endswith("polyret_correction"), type(m[-1]).__module__
        encode_all(m, texts, out)
""")


def _known_correction(tiny_model, method: str) -> LanguageCorrection:
    """Means fitted on TEXTS; for the other methods, fixed random directions / orthogonal maps."""
    base = fit_model_correction(tiny_model, "center-both", texts=TEXTS, min_texts=3, show_progress=False, cache=False)
    rng = np.random.default_rng(7)
    d = len(base.stats["en"]["query_mean"])
    for lang, st in base.stats.items():
        v = rng.normal(size=(1, d))
        st["directions"] = (v / np.linalg.norm(v)).astype(np.float32)
        st["rotation"] = (
            np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32) if lang != "en" else np.eye(d, dtype=np.float32)
        )
    corr = base.with_method(method)
    corr.n_directions = 1
    return corr


def _corrected_dir(tiny_model, tmp_path, method: str):
    model_dir = tmp_path / f"tiny-{method}"
    tiny_model.save(str(model_dir))
    corr = _known_correction(tiny_model, method)
    corr.save(model_dir)
    install_correction_module(model_dir)
    return model_dir, corr


METHODS = ("center-both", "lir", "rotate")


@pytest.fixture(scope="module")
def plain_runs(tiny_model, tmp_path_factory):
    """method -> (model dir, known correction, embeddings from a plain SentenceTransformer(dir)),
    all methods encoded by one child process (its imports are most of its time)."""
    tmp_path = tmp_path_factory.mktemp("plain-st")
    dirs = {m: _corrected_dir(tiny_model, tmp_path, m) for m in METHODS}
    outs = {m: tmp_path / f"{m}.npz" for m in METHODS}
    args = [str(a) for m in METHODS for a in (dirs[m][0], outs[m])]
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf-modules"), "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(TEXTS, ensure_ascii=False), *args],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    runs = {}
    for m in METHODS:
        with np.load(outs[m]) as npz:
            runs[m] = (*dirs[m], {k: npz[k] for k in npz.files})
    return runs


def _rowwise_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("method", METHODS)
def test_plain_sentence_transformer_equals_polyret(tiny_model, plain_runs, method):
    model_dir, corr, plain = plain_runs[method]
    # polyret's side: the directory loaded by polyret (module taken off), its stored correction applied.
    model = load_model(str(model_dir), device="cpu")
    assert not any(type(m).__name__ == "LanguageCorrectionModule" for m in model)
    assert model_id(model) == model_id(tiny_model)  # the correction fitted for the weights still matches
    stored, how = resolve_correction("auto", model)
    assert stored is not None and stored.fingerprint() == corr.fingerprint(), how
    for lang, items in TEXTS.items():
        for kind, key in (("query", f"q-{lang}"), ("passage", f"p-{lang}")):
            ours = stored.apply(encode_texts(model, items, kind, bf16=False, show_progress=False), lang, kind)
            assert _rowwise_cos(plain[key], ours).min() >= 0.9999, (key, _rowwise_cos(plain[key], ours))
    allt = [t for items in TEXTS.values() for t in items]
    for kind, key in (("query", "q-inferred"), ("passage", "p-inferred"), ("passage", "plain-encode")):
        raw = encode_texts(model, allt, kind, bf16=False, show_progress=False)
        ours = stored.apply(raw, infer_languages(raw, stored, kind), kind)
        assert _rowwise_cos(plain[key], ours).min() >= 0.9999, key
    # The correction really changed something (else the equality above would prove nothing).
    raw_q = encode_texts(model, TEXTS["de"], "query", bf16=False, show_progress=False)
    assert _rowwise_cos(plain["q-de"], raw_q).max() < 0.999


def test_module_recipes_match_polyret():
    from polyret.correction_module import RECIPES as MODULE_RECIPES

    for name, r in RECIPES.items():
        assert MODULE_RECIPES[name] == (r.center_queries, r.center_passages, r.directions, r.rotation, r.renormalise)


def test_install_is_idempotent_and_old_layout_loads(tiny_model, tmp_path):
    model_dir, corr = _corrected_dir(tiny_model, tmp_path, "center-both")
    install_correction_module(model_dir)  # twice: still one entry, last, after Normalize
    modules = json.loads((model_dir / "modules.json").read_text())
    assert [m["type"] for m in modules].count(MODULE_TYPE) == 1
    assert modules[-1]["type"] == MODULE_TYPE and "Normalize" in modules[-2]["type"]
    assert modules[-1]["path"] == "language_correction" and (model_dir / MODULE_FILE).is_file()
    # The old layout: statistics only, pipeline untouched. polyret reads the same correction.
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    (old / "modules.json").write_text(json.dumps(modules[:-1]))
    (old / MODULE_FILE).unlink()
    assert not has_correction_module(old)
    a, _ = resolve_correction("auto", load_model(str(old), device="cpu"))
    b, _ = resolve_correction("auto", load_model(str(model_dir), device="cpu"))
    assert a.fingerprint() == b.fingerprint() == corr.fingerprint()


def test_module_refuses_a_per_text_language_list(tiny_model, tmp_path):
    from sentence_transformers.sentence_transformer import SentenceTransformer

    from polyret.correction_module import LanguageCorrectionModule

    model_dir, _ = _corrected_dir(tiny_model, tmp_path, "center-both")
    m = SentenceTransformer._load_with_module_classes(
        str(model_dir), {MODULE_TYPE: LanguageCorrectionModule}, device="cpu"
    )
    assert "language" in m.get_model_kwargs()
    with pytest.raises(ValueError, match="one language code"):
        m.encode_query(TEXTS["de"], language=["de"] * 5)
    with pytest.raises(ValueError, match="no statistics for language 'fr'"):
        m.encode_query(TEXTS["de"], language="fr")
