"""The io layer: strict atomic JSON, UTF-8 errors with byte offsets, TREC round trips, and the
output-folder policy (each row of the table in polyret.io's docstring)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.errors import PolyretError
from polyret.io import (
    MARKER,
    OutputDir,
    OutputFile,
    read_json,
    read_text,
    write_json,
)
from polyret.trec import read_trec_qrels, read_trec_run, run_from_arrays, write_trec_qrels, write_trec_run


def test_write_json_strict_and_atomic(tmp_path):
    p = tmp_path / "r.json"
    write_json(p, {"b": float("nan"), "a": np.float32(0.5), "c": [np.int64(3), float("inf")], "p": tmp_path})
    text = p.read_text(encoding="utf-8")
    assert json.loads(text) == {"b": None, "a": 0.5, "c": [3, None], "p": str(tmp_path)}
    assert list(json.loads(text)) == ["b", "a", "c", "p"]  # caller's order kept
    assert "NaN" not in text and "Infinity" not in text
    with pytest.raises(TypeError):
        write_json(p, {"x": object()})
    # the failed write left the previous file intact and no temp file behind
    assert json.loads(p.read_text())["a"] == 0.5
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_utf8_error_names_file_and_byte_offset(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("first line\nsecond caf\u00e9\n".encode("latin-1"))
    with pytest.raises(PolyretError) as e:
        read_text(p)
    # 'first line\n' is 11 bytes, 'second caf' 10 more: the é (0xe9) sits at byte 21 on line 2
    assert str(p) in str(e.value) and "byte 21" in str(e.value) and "line 2" in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }', encoding="utf-8")
    with pytest.raises(PolyretError, match=r"line 2, column 7"):
        read_json(bad)


def test_trec_round_trip(tmp_path):
    run = run_from_arrays(
        ["q1", "q2"], ["d0", "d1", "d2"], np.array([[2, 0], [1, -1]]), np.array([[0.9, 0.5], [0.7, 0.0]])
    )
    assert run == {"q1": [("d2", 0.9), ("d0", 0.5)], "q2": [("d1", 0.7)]}
    write_trec_run(tmp_path / "r.trec", run)
    assert (tmp_path / "r.trec").read_text().splitlines()[0] == "q1 Q0 d2 1 0.900000 polyret"
    assert read_trec_run(tmp_path / "r.trec") == run
    qrels = {"q1": {"d2": 1, "d1": 0}}
    write_trec_qrels(tmp_path / "q.trec", qrels)
    assert read_trec_qrels(tmp_path / "q.trec") == qrels
    with pytest.raises(PolyretError, match="whitespace"):
        write_trec_run(tmp_path / "x.trec", {"q 1": [("d", 1.0)]})


def test_output_dir_policy(tmp_path):
    out = tmp_path / "out"
    with OutputDir(out, "eval-x") as d:
        assert d.path == out
        (d.path / "a.txt").write_text("1")
    assert json.loads((out / MARKER).read_text())["complete"] is True
    # a finished output is refused without --overwrite
    with pytest.raises(PolyretError, match="already holds a finished eval-x"):
        OutputDir(out, "eval-x")
    # another kind is refused even with --overwrite
    with pytest.raises(PolyretError, match="holds a polyret eval-x output, not train"):
        OutputDir(out, "train", overwrite=True)
    # --overwrite and a failure: the old output stays exactly as it was, no temp folder is left
    with pytest.raises(RuntimeError):
        with OutputDir(out, "eval-x", overwrite=True) as d:
            assert d.path != out and d.path.parent == out.parent
            (d.path / "a.txt").write_text("2")
            raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # --overwrite and success: swapped in, files of the old output not rewritten are gone
    (out / "stale.txt").write_text("old")
    with OutputDir(out, "eval-x", overwrite=True) as d:
        (d.path / "a.txt").write_text("2")
    assert (out / "a.txt").read_text() == "2" and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_dir_never_touches_foreign_folders(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(PolyretError, match="not written by polyret"):
            OutputDir(mine, "eval-x", overwrite=overwrite)
    assert (mine / "thesis.tex").read_text() == "precious"
    # a folder of an older polyret (no marker) is recognised by its signature files
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "results.json").write_text("{}")
    with pytest.raises(PolyretError, match="already holds a finished"):
        OutputDir(legacy, "eval-x", legacy_files=["results.json"])


def test_output_dir_incomplete_is_continued_in_place(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with OutputDir(out, "eval-x") as d:
            (d.path / "part.bin").write_text("half")
            raise KeyboardInterrupt
    assert json.loads((out / MARKER).read_text())["complete"] is False
    with OutputDir(out, "eval-x") as d:  # no --overwrite needed to finish an interrupted run
        assert (d.path / "part.bin").read_text() == "half"


def test_output_dir_same_command_again_is_redone_in_place(tmp_path):
    """A finished output re-run with the same settings is reopened in place (the answer to any
    interruption is "run the same command again", finished or not); other settings are refused,
    naming what differs, and --overwrite still replaces it."""
    out = tmp_path / "out"
    with OutputDir(out, "eval-x", settings={"index": "flat", "k": 100}) as d:
        (d.path / "results.json").write_text("1")
    again = OutputDir(out, "eval-x", settings={"index": "flat", "k": 100})
    assert again.rerun and not again.fresh
    with again as d:
        assert d.path == out and (d.path / "results.json").read_text() == "1"
        assert json.loads((out / MARKER).read_text())["complete"] is False  # until this run finishes
    assert json.loads((out / MARKER).read_text())["settings"] == {"index": "flat", "k": 100}
    with pytest.raises(PolyretError, match=r"made with other settings \(index 'flat', now 'hnsw'\)"):
        OutputDir(out, "eval-x", settings={"index": "hnsw", "k": 100})
    with pytest.raises(PolyretError, match="already holds a finished eval-x output;"):
        OutputDir(out, "eval-x")  # a caller that states no settings is refused as before
    assert OutputDir(out, "eval-x", overwrite=True, settings={"index": "hnsw", "k": 100}).fresh


def test_output_dir_killed_while_writing_its_first_marker(tmp_path):
    """SIGKILL inside the first marker write of a new folder leaves only the marker's temp file:
    that folder is ours and empty, not foreign (a re-run used to be refused with exit 2)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / f".{MARKER}.a1b2c3d4.tmp").write_text('{"kind": "ev')
    with OutputDir(out, "eval-x") as d:
        (d.path / "results.json").write_text("1")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "results.json"]
    # the same moment of an --overwrite run: its sibling temp folder has no marker yet (or none at all)
    for left in ({f".{MARKER}.e5f6a7b8.tmp": '{"kin'}, {}):
        tmp = tmp_path / ".out.polyret-tmp-x1y2z3"
        tmp.mkdir()
        for name, text in left.items():
            (tmp / name).write_text(text)
        OutputDir(out, "eval-x", overwrite=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_overlapping_inputs_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.json").write_text("{}")
    for out, inputs in (
        (data, [data]),
        (data / "sub", [data]),
        (tmp_path, [data / "f.json"]),
        (data, [data / "f.json"]),
    ):
        with pytest.raises(PolyretError, match="input"):
            OutputDir(out, "eval-x", overwrite=True, inputs=[*inputs, "default"])
    OutputDir(tmp_path / "elsewhere", "eval-x", inputs=[data, "default"])  # no overlap: accepted
    with pytest.raises(PolyretError, match="is the input"):
        OutputFile(data / "f.json", overwrite=True, inputs=[data / "f.json"])


def test_killed_swap_is_recovered(tmp_path):
    out = tmp_path / "out"
    with OutputDir(out, "eval-x") as d:
        (d.path / "a.txt").write_text("1")
    # simulate SIGKILL between the two renames of a swap, and an abandoned temp folder
    old = tmp_path / ".out.polyret-old-abc"
    out.rename(old)
    tmp = tmp_path / ".out.polyret-tmp-def"
    tmp.mkdir()
    (tmp / MARKER).write_text(json.dumps({"kind": "eval-x", "complete": False}))
    with pytest.raises(PolyretError, match="already holds a finished"):
        OutputDir(out, "eval-x")
    assert (out / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_file_npy_suffix(tmp_path):
    (tmp_path / "emb.npy").write_bytes(b"keep")
    with pytest.raises(PolyretError, match="emb.npy exists"):
        OutputFile(tmp_path / "emb", suffix=".npy")
    t = OutputFile(tmp_path / "emb", suffix=".npy", overwrite=True)
    with t.open("wb") as f:
        np.save(f, np.zeros(2, dtype=np.float32))
    assert np.load(tmp_path / "emb.npy").tolist() == [0.0, 0.0]


def test_save_figure_is_atomic_and_closes_the_figure(tmp_path):
    """A plot written by polyret.report.save_figure never leaves half a PNG: a save that fails midway
    keeps the earlier file byte for byte, and either way the figure is closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polyret.report import save_figure

    path = tmp_path / "plot.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, path, dpi=50)
    first = path.read_bytes()
    assert first.startswith(b"\x89PNG") and not plt.fignum_exists(fig.number)

    fig2, _ = plt.subplots()

    def half_then_fail(f, **kw):
        f.write(b"\x89PNG half")
        raise RuntimeError("disk full")

    fig2.savefig = half_then_fail
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig2, path)
    assert path.read_bytes() == first and not plt.fignum_exists(fig2.number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]  # no temp file left beside it
