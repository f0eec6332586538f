"""Streaming corpus encode: valid .npy, bounded chunks, resumable after interruption, refuses mix-ups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.errors import PolyretError
from polyret.stream import EmbeddingStore, encode_corpus
from retrieval_fakes import DIM, TopicEncoder


def _docs(n):
    return lambda: ((f"doc-{i}", f"topic {i % 7} text {i}") for i in range(n))


class Interrupt(Exception):
    pass


def test_store_is_a_valid_npy_equal_to_one_shot_encoding(tmp_path):
    enc = TopicEncoder()
    store = encode_corpus(_docs(1000), tmp_path / "e", enc, identity="topic", chunk_size=300, show_progress=False)
    expected = TopicEncoder()([t for _, t in _docs(1000)()])
    loaded = np.load(tmp_path / "e" / "embeddings.npy", mmap_mode="r")
    assert loaded.shape == (1000, DIM) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, expected)
    assert max(enc.calls) <= 300 and sum(enc.calls) == 1000  # memory bounded by the chunk, every text once
    assert store.ids()[:2] == ["doc-0", "doc-1"] and store.n == 1000 and store.dim == DIM
    np.testing.assert_array_equal(store.rows([999, 3, 500]), expected[[999, 3, 500]])
    blocks = list(store.iter_blocks(256))
    assert [s for s, _ in blocks] == [0, 256, 512, 768]
    np.testing.assert_array_equal(np.vstack([b for _, b in blocks]), expected)
    assert store.lookup_ids([7, 999]) == {7: "doc-7", 999: "doc-999"}
    assert store.index_of(["doc-5", "nope"]) == {"doc-5": 5}


def test_resumes_after_interruption_without_reencoding(tmp_path):
    out = tmp_path / "e"
    calls = []

    def dying(texts):  # dies on its third chunk, like a killed job
        calls.append(len(texts))
        if len(calls) == 3:
            raise Interrupt
        return TopicEncoder()(texts)

    with pytest.raises(Interrupt):
        encode_corpus(_docs(1000), out, dying, identity="topic", chunk_size=300, show_progress=False)
    marker = json.loads((out / "progress.json").read_text())
    assert marker["rows_done"] == 600 and not marker["complete"]
    with pytest.raises(PolyretError, match="no complete polyret embedding store"):
        EmbeddingStore.open(out)

    enc = TopicEncoder()
    store = encode_corpus(_docs(1000), out, enc, identity="topic", chunk_size=300, show_progress=False)
    assert enc.calls == [300, 100]  # only rows 600..999 encoded on the rerun
    np.testing.assert_array_equal(store.memmap(), TopicEncoder()([t for _, t in _docs(1000)()]))
    # a finished store is reused as is
    again = TopicEncoder()
    encode_corpus(_docs(1000), out, again, identity="topic", chunk_size=300, show_progress=False)
    assert again.calls == []


def test_rerun_after_dying_in_the_first_chunk(tmp_path):
    def dead(texts):
        raise Interrupt

    with pytest.raises(Interrupt):
        encode_corpus(_docs(10), tmp_path / "e", dead, identity="topic", chunk_size=4, show_progress=False)
    assert not (tmp_path / "e" / "progress.json").exists()
    store = encode_corpus(
        _docs(10), tmp_path / "e", TopicEncoder(), identity="topic", chunk_size=4, show_progress=False
    )
    assert store.n == 10


def test_rerun_after_sigkill_while_writing_the_first_progress_marker(tmp_path):
    """SIGKILL inside the first marker write leaves the store's files and the marker's temp file
    (`.progress.json.XXXX.tmp`), but no marker: the next run must take it as its own, not as foreign."""
    out = tmp_path / "e"
    encode_corpus(_docs(10), out, TopicEncoder(), identity="topic", chunk_size=4, show_progress=False)
    half = (out / "progress.json").read_bytes()[:20]
    (out / "progress.json").unlink()
    (out / ".progress.json.k2j4h6g8.tmp").write_bytes(half)
    store = encode_corpus(_docs(10), out, TopicEncoder(), identity="topic", chunk_size=4, show_progress=False)
    np.testing.assert_array_equal(store.memmap(), TopicEncoder()([t for _, t in _docs(10)()]))


def test_refuses_other_corpus_or_encoder_and_foreign_dirs(tmp_path):
    out = tmp_path / "e"
    encode_corpus(_docs(50), out, TopicEncoder(), identity="topic", chunk_size=20, show_progress=False)
    with pytest.raises(PolyretError, match="different corpus or encoder"):
        encode_corpus(_docs(50), out, TopicEncoder(), identity="other-model", show_progress=False)
    with pytest.raises(PolyretError, match="different corpus or encoder"):
        encode_corpus(_docs(51), out, TopicEncoder(), identity="topic", show_progress=False)
    store = encode_corpus(_docs(51), out, TopicEncoder(), identity="topic", overwrite=True, show_progress=False)
    assert store.n == 51
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PolyretError, match="not empty and is not a polyret embedding directory"):
        encode_corpus(_docs(5), foreign, TopicEncoder(), identity="topic", show_progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_bad_encoder_output_and_empty_corpus(tmp_path):
    with pytest.raises(PolyretError, match=r"returned shape \(3, 24\) for 4 texts starting at row 0"):
        encode_corpus(_docs(4), tmp_path / "a", lambda t: TopicEncoder()(t[:3]), identity="x", show_progress=False)
    with pytest.raises(PolyretError, match="non-finite"):
        encode_corpus(
            _docs(4), tmp_path / "b", lambda t: np.full((len(t), 4), np.nan), identity="x", show_progress=False
        )
    with pytest.raises(PolyretError, match="corpus holds no documents"):
        encode_corpus(_docs(0), tmp_path / "c", TopicEncoder(), identity="x", show_progress=False)


def test_any_float32_npy_can_be_searched_as_a_store(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "vecs.npy", x)
    store = EmbeddingStore.from_npy(tmp_path / "vecs.npy")
    assert (store.n, store.dim) == (4, 3)
    np.testing.assert_array_equal(np.vstack([b for _, b in store.iter_blocks(3)]), x)
    np.save(tmp_path / "ints.npy", x.astype(np.int64))
    with pytest.raises(PolyretError, match="not a C-order float32 matrix"):
        EmbeddingStore.from_npy(tmp_path / "ints.npy")
