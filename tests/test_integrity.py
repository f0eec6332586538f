"""Issue 28: nothing polyret reads back from disk is trusted unchecked.

One test per class of damage: model folders (weights, tokenizer, pooling, vocabulary), corpus stores,
the embedding cache, correction statistics, non-finite embeddings, the output lock and the umask.
Each fails on the code before the fix (noted per test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from polyret.correction import LanguageCorrection, fit_correction
from polyret.encode import EmbeddingCache, encode_texts
from polyret.errors import PolyretError
from polyret.integrity import DamagedFile
from polyret.io import OutputDir, write_json
from polyret.model import load_model
from polyret.stream import EMBEDDINGS, IDS, EmbeddingStore, encode_corpus


@pytest.fixture(scope="module")
def tiny_dir(tiny_model, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny-saved") / "m"
    tiny_model.save(str(d))
    return d


def _copy(src: Path, tmp_path: Path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(src, d)
    return d


# ---- model folders: one loader, checked before any work --------------------------------------


def test_truncated_safetensors_is_one_line_naming_the_file(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    w = d / "model.safetensors"
    size = w.stat().st_size
    with open(w, "r+b") as f:
        f.truncate(size - 1000)
    # Before: safetensors' SafetensorError (not a PolyretError) reached the user as a traceback.
    with pytest.raises(PolyretError, match=r"model\.safetensors is \d+ bytes but its header describes \d+"):
        load_model(str(d))


def test_missing_tokenizer_is_refused_not_replaced_by_a_stub(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    (d / "tokenizer.json").unlink()
    (d / "tokenizer_config.json").unlink()
    # Before: transformers fell back to a 5-piece BertTokenizer and every text got the same vector (exit 0).
    with pytest.raises(PolyretError, match="no tokenizer"):
        load_model(str(d))


def test_missing_pooling_config_is_refused(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    (d / "modules.json").unlink()
    # Before: sentence-transformers silently guessed mean pooling.
    with pytest.raises(PolyretError, match="modules.json is missing"):
        load_model(str(d))
    d2 = _copy(tiny_dir, tmp_path / "b")
    (d2 / "1_Pooling" / "config.json").unlink()
    with pytest.raises(PolyretError, match=r"the pooling config .*1_Pooling/config.json is missing"):
        load_model(str(d2))


def test_tokenizer_of_another_model_is_refused(tiny_dir, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    d = _copy(tiny_dir, tmp_path)
    Tokenizer(WordLevel({"<unk>": 0, "<pad>": 1, "a": 2}, unk_token="<unk>")).save(str(d / "tokenizer.json"))
    # Before: loaded; 3 pieces (6 with the special tokens) for a 250,002-row table.
    with pytest.raises(PolyretError, match=r"the tokenizer has [3-6] pieces but the embedding table 250002 rows"):
        load_model(str(d))


def test_merge_refuses_a_bad_input_and_checks_its_output(tiny_dir, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from polyret.io import read_marker
    from polyret.merge import merge_models

    bad = _copy(tiny_dir, tmp_path)
    (bad / "tokenizer.json").unlink()
    (bad / "tokenizer_config.json").unlink()
    with pytest.raises(PolyretError, match="no tokenizer"):
        merge_models(str(tiny_dir), str(bad), 0.5, tmp_path / "m1")
    assert not (tmp_path / "m1").exists()

    save = SentenceTransformer.save

    def save_without_tokenizer(self, path, *a, **kw):  # a save that loses a file: the output check sees it
        save(self, path, *a, **kw)
        (Path(path) / "tokenizer.json").unlink()

    monkeypatch.setattr(SentenceTransformer, "save", save_without_tokenizer)
    with pytest.raises(PolyretError, match="no tokenizer"):
        merge_models(str(tiny_dir), str(tiny_dir), 0.5, tmp_path / "m2")
    assert read_marker(tmp_path / "m2")["complete"] is False  # never reported as a finished merge


def test_non_finite_embeddings_stop_as_they_are_produced(tiny_model):
    import copy

    import torch

    broken = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(broken[0].auto_model.parameters()).fill_(float("nan"))
    # Before: NaN rows were returned (and cached) as embeddings.
    with pytest.raises(PolyretError, match="non-finite"):
        encode_texts(broken, ["one", "two"], "query", show_progress=False, bf16=False)


# ---- corpus stores ----------------------------------------------------------------------------


def _docs(n=50):
    return lambda: ((f"d{i}", f"text {i}") for i in range(n))


class _Encoder:
    """Deterministic vectors from the text; counts calls (a re-run that reuses the store makes none)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, texts):
        self.calls += 1
        return np.stack([np.random.default_rng(int(t.split()[1])).normal(size=8) for t in texts]).astype(np.float32)


def test_store_with_nan_rows_is_re_encoded_with_a_warning(tmp_path, capsys):
    enc = _Encoder()
    store = encode_corpus(_docs(), tmp_path / "s", enc, identity="x", chunk_size=16, show_progress=False)
    want = np.array(store.memmap())
    with open(store.path, "r+b") as f:  # two rows overwritten with NaN / inf, as in the issue
        f.seek(store.offset + 3 * 8 * 4)
        f.write(np.full(8, np.nan, np.float32).tobytes() + np.full(8, np.inf, np.float32).tobytes())
    enc.calls = 0
    store = encode_corpus(_docs(), tmp_path / "s", enc, identity="x", chunk_size=16, show_progress=False)
    # Before: reused as it was (0 calls, NaN rows fed the search).
    assert enc.calls == 4
    np.testing.assert_array_equal(np.array(store.memmap()), want)
    assert "fails its checksum" in capsys.readouterr().err


def test_damaged_store_is_refused_by_open(tmp_path):
    store = encode_corpus(_docs(), tmp_path / "s", _Encoder(), identity="x", chunk_size=16, show_progress=False)
    with open(store.path, "r+b") as f:  # finite but different numbers: only a checksum sees it
        f.seek(store.offset)
        f.write(np.ones(8, np.float32).tobytes())
    with pytest.raises(DamagedFile, match=f"{EMBEDDINGS} fails its checksum"):
        EmbeddingStore.open(tmp_path / "s")
    ids = tmp_path / "s" / IDS
    store = encode_corpus(_docs(), tmp_path / "t", _Encoder(), identity="x", chunk_size=16, show_progress=False)
    ids = tmp_path / "t" / IDS
    lines = ids.read_text().splitlines()
    ids.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # two ids swapped
    with pytest.raises(DamagedFile, match=f"{IDS} fails its checksum"):
        EmbeddingStore.open(tmp_path / "t")
    with open(store.path, "r+b") as f:
        f.truncate(store.path.stat().st_size - 4)
    with pytest.raises(DamagedFile, match="truncated"):
        EmbeddingStore.open(tmp_path / "t")


# ---- the embedding cache ------------------------------------------------------------------------


def test_cache_rows_damaged_or_of_another_width_are_re_made(tmp_path, capsys):
    root = tmp_path / "c"
    keys = ["k1", "k2", "k3"]
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    EmbeddingCache(root, 4).put(keys, vecs)
    found, got = EmbeddingCache(root, 4).get(keys)
    np.testing.assert_array_equal(got, vecs)
    with open(root / "vectors.f32", "r+b") as f:
        f.seek(4 * 4)
        f.write(np.float32(np.nan).tobytes())
    found, got = EmbeddingCache(root, 4).get(keys)
    # Before: the NaN row came back as a cached embedding.
    assert not found.any() and "fail their checksum" in capsys.readouterr().err
    EmbeddingCache(root, 4).put(keys, vecs)
    found, got = EmbeddingCache(root, 2).get(["k1", "k2"])  # the same entry read as 2-wide rows
    # Before: 6 rows of width 2 were made up from the 3 rows of width 4.
    assert not found.any() and "width 4" in capsys.readouterr().err


# ---- correction statistics ----------------------------------------------------------------------


def _fitted(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    q = {lang: rng.normal(size=(25, 4)).astype(np.float32) for lang in ("de", "en")}
    corr = fit_correction(q, q, "center", model_id="abc")
    corr.save(tmp_path)
    return tmp_path


def test_damaged_correction_statistics_are_one_line(tmp_path):
    d = _fitted(tmp_path / "a")
    npz = d / "language_correction" / "stats.npz"
    with open(npz, "r+b") as f:
        f.truncate(npz.stat().st_size // 2)
    # Before: zipfile.BadZipFile (a traceback).
    with pytest.raises(DamagedFile, match="stats.npz"):
        LanguageCorrection.load(d)
    d = _fitted(tmp_path / "b")
    npz = d / "language_correction" / "stats.npz"
    arrays = dict(np.load(npz))
    arrays["de/passage_mean"] = np.zeros(3, np.float32)  # another width, written as a valid npz
    np.savez(npz, **arrays)
    with pytest.raises(DamagedFile, match="stats.npz"):
        LanguageCorrection.load(d)


def test_correction_show_checks_model_identity_and_files(tiny_dir, tmp_path, capsys):
    from polyret.cli import main
    from polyret.encode import model_id

    d = _copy(tiny_dir, tmp_path)
    rng = np.random.default_rng(0)
    q = {lang: rng.normal(size=(25, 32)).astype(np.float32) for lang in ("de", "en")}
    fit_correction(q, q, "center", model_id=model_id(load_model(str(d)))).save(d)
    main(["correction", "show", "--model", str(d)])  # returns: exit 0
    assert '"method": "center"' in capsys.readouterr().out
    meta = d / "language_correction" / "correction.json"
    write_json(meta, {**json.loads(meta.read_text()), "model_id": "0123456789abcdef"})
    # Before: printed and exit 0 for statistics fitted for another model.
    with pytest.raises(SystemExit) as bad:
        main(["correction", "show", "--model", str(d)])
    assert bad.value.code == 2
    assert "fitted for model 0123456789abcdef" in capsys.readouterr().err


# ---- outputs: the user's umask, one run per --out ------------------------------------------------


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        p = write_json(tmp_path / "r.json", {"a": 1})
        with OutputDir(tmp_path / "o", "eval-x", settings={}) as out:
            write_json(out.path / "results.json", {})
        with OutputDir(tmp_path / "o", "eval-x", settings={"b": 1}, overwrite=True) as out:  # fresh sibling swapped in
            write_json(out.path / "results.json", {})
    finally:
        os.umask(old)
    # Before: 0600 whatever the umask (mkstemp), and 0700 for an --overwrite folder (mkdtemp).
    assert p.stat().st_mode & 0o777 == mode
    assert (tmp_path / "o" / "results.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "o").stat().st_mode & 0o777 == mode | 0o111 & ~mask


def test_second_run_on_one_out_is_refused_and_a_dead_owner_is_recovered(tmp_path, capsys):
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from polyret.io import OutputDir; "
                f"o = OutputDir({str(out)!r}, 'eval-x'); print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        # Before: no lock, both runs wrote into one folder.
        with pytest.raises(PolyretError, match=rf"in use by another polyret run \(pid {holder.pid} "):
            OutputDir(out, "eval-x")
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".o.polyret-lock").exists()  # SIGKILL: nobody removed it
    with OutputDir(out, "eval-x") as o:
        write_json(o.path / "results.json", {})
    assert f"stale lock .o.polyret-lock left by pid {holder.pid}" in capsys.readouterr().err
    assert not (tmp_path / ".o.polyret-lock").exists()
    t0 = time.perf_counter()
    OutputDir(out, "eval-x", reuse=True)  # the same process may take its own --out again
    OutputDir(out, "eval-x", reuse=True)
    assert time.perf_counter() - t0 < 5
