"""Issue 14: every command's bad-input exit code through the real `polyret` entry point, the exit
codes of checks and interruptions, the output-folder policy seen from the commands, and the one
verdict per input format (each test feeds a bad input and asserts one clear error, nothing written)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import in_ci, missing_data
from polyret.errors import PolyretError

POLYRET = str(Path(sys.executable).parent / "polyret")


def polyret(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # a guard against a hang, not a speed test: on a shared, loaded machine startup alone can take minutes
    env = dict(os.environ, COLUMNS="200", HF_HUB_OFFLINE="1")
    return subprocess.run([POLYRET, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


BAD_INPUT = {
    # command -> (arguments, words the one error line must contain)
    "model info": (["model", "info", "--model", "{N}/model"], "neither 'default' nor a local directory"),
    "model prepare": (["model", "prepare", "--out", "{F}"], "{F}"),
    "encode": (["encode", "--input", "{N}.txt", "--out", "o"], "no such input file"),
    "data status": (["data", "status", "--data", "{N}"], "no data directory"),
    "data download": (["data", "download", "--dest", "d", "--only", "nosuch"], "unknown data set"),
    "data build-pairs": (["data", "build-pairs", "--from", "empty.jsonl", "--out", "o.jsonl"], "holds no groups"),
    "data sentence-agreement": (["data", "sentence-agreement", "--xquad-r", "{N}"], "no XQuAD-R language files"),
    "data export-beir": (
        ["data", "export-beir", "--data", "{N}", "--setting", "multi", "--out", "o"],
        "no such LAReQA",
    ),
    "eval lareqa": (["eval", "lareqa", "--data", "{N}", "--out", "o"], "no such LAReQA"),
    "eval xnli": (["eval", "xnli", "--data", "{N}", "--out", "o"], "does not exist"),
    "eval tatoeba": (["eval", "tatoeba", "--langs", "deu", "--data", "{N}"], "does not exist"),
    "eval beir": (["eval", "beir", "--data", "{N}", "--out", "o"], "does not exist"),
    "eval miracl": (
        ["eval", "miracl", "--lang", "sw", "--corpus", "{N}", "--out", "o"],
        "polyret does not download it",
    ),
    "train": (["train", "--out", "o", "--config", "yes.yaml"], "key 'steps'"),
    "merge": (["merge", "--base", "{N}", "--tuned", "{N}", "--weight", "2", "--out", "o"], "must be in [0, 1]"),
    "experiment": (["experiment", "{N}.yaml", "--out", "o"], "experiment config not found"),
    "demo": (["demo", "--every-nth-paragraph", "0"], "--every-nth-paragraph"),
    "usage": (["eval", "beir", "--no-such-option"], "No such option"),
}


@pytest.mark.parametrize("command", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_error_and_writes_nothing(command, tmp_path):
    args, words = BAD_INPUT[command]
    n, f = tmp_path / "nonexistent", tmp_path / "a-file"
    f.write_text("not a folder")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "yes.yaml").write_text("steps: yes\n")  # YAML 1.1 reads yes as true: must not become 1 step
    before = sorted(p.name for p in tmp_path.iterdir())
    r = polyret(*[a.format(N=n, F=f) for a in args], cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert words.format(F=f) in " ".join(r.stderr.split()), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no half-made output
    assert f.read_text() == "not a folder"


def _fake_data_root(root: Path, good: bool) -> Path:
    d = root / "lareqa" / "xquad-r"
    d.mkdir(parents=True)
    (d / "en.json").write_text('{"data": []}', encoding="utf-8")
    digest = hashlib.sha256((d / "en.json").read_bytes()).hexdigest() if good else "0" * 64
    (root / "SHA256SUMS").write_text(f"{digest}  lareqa/xquad-r/en.json\n")
    return root


@pytest.mark.parametrize("as_json", [False, True])
def test_checksum_mismatch_exits_1(tmp_path, as_json):
    extra = ["--json"] if as_json else []
    ok = polyret("data", "status", "--data", _fake_data_root(tmp_path / "good", True), *extra, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = polyret("data", "status", "--data", _fake_data_root(tmp_path / "bad", False), *extra, cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    if as_json:
        assert json.loads(bad.stdout)["datasets"]["xquad-r"]["mismatched"] == ["lareqa/xquad-r/en.json"]


def test_error_text_is_printed_literally(tmp_path):
    """Square brackets in a path (or a YAML excerpt) are text, not rich markup to be swallowed."""
    d = tmp_path / "runs [old]"
    d.mkdir()
    r = polyret("encode", "--input", d / "x[bold].txt", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2
    assert f"{d}/x[bold].txt: no such input file" in " ".join(r.stderr.split())


def test_ci_turns_missing_data_into_failures(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        missing_data("no data directory")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        missing_data("no data directory")


def test_no_test_skips_around_the_ci_rule():
    """Every skip for missing data goes through conftest.missing_data (a failure in CI); a test that
    called pytest.skip / importorskip itself would stay green in CI when the data or a declared
    dependency went missing. Only torchrun's absence (an install without the launcher) may skip."""
    import re

    tests = Path(__file__).parent
    offenders = []
    for path in sorted(tests.glob("*.py")):
        if path.name == "conftest.py":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, line in enumerate(lines, 1):
            code = line.split("#")[0]
            # the skip's condition may continue on the next lines (the formatter wraps long decorators)
            statement = " ".join(x.split("#")[0] for x in lines[lineno - 1 : lineno + 2])
            if (
                re.search(r"pytest\.(skip|importorskip)\(|mark\.skip\(|mark\.skipif\(", code)
                and "TORCHRUN" not in statement
                and "torchrun" not in statement
                and "pytest.skip.Exception" not in code
            ):
                offenders.append(f"{path.name}:{lineno}: {line.strip()}")
    assert not offenders, offenders


# ---- one verdict per format ----------------------------------------------------------------


def _lareqa_par(**over):
    par = {
        "context": "One two. Three four.",
        "sentence_breaks": [[0, 8], [9, 20]],
        "sentences": ["One two.", "Three four."],
        "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Three", "answer_start": 9}]}],
    }
    par.update(over)
    return par


def _write_lareqa(d: Path, par: dict | None) -> Path:
    """de.json good, en.json with `par` (None: no paragraphs in either file)."""
    d.mkdir(parents=True, exist_ok=True)
    for lang, p in (("de", _lareqa_par() if par else None), ("en", par)):
        (d / f"{lang}.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": [p] if p else []}]}))
    return d


BAD_LAREQA = [
    (
        dict(qas=[{"id": "q1", "question": "What?", "answers": [{"text": "x", "answer_start": 99}]}]),
        "question id 'q1'",
        "answer_start 99 is outside its context",
    ),
    (dict(sentence_breaks=[["0", "8"], [9, 20]]), "paragraphs[0]", "sentence_breaks[0] is not a [start, end] pair"),
    (dict(sentences=[1, 2]), "paragraph", "sentences[0] is not a string"),
    (dict(sentence_breaks=[[0, 8], [9, 50]]), "paragraph", "outside the context"),
]


@pytest.mark.parametrize("over,where,words", BAD_LAREQA)
def test_lareqa_same_verdict_in_eval_export_and_build_pairs(tmp_path, over, where, words):
    from polyret.data.beir import export_lareqa_beir
    from polyret.data.lareqa import load_lareqa
    from polyret.data.pairs import build_groups

    d = _write_lareqa(tmp_path / "lareqa", _lareqa_par(**over))
    errors = []
    for read in (
        lambda: load_lareqa(d),
        lambda: export_lareqa_beir(d, "multi", tmp_path / "beir"),
        lambda: build_groups([d / "en.json", d / "de.json"], unit="sentence"),
        lambda: build_groups([d / "en.json"], unit="paragraph"),
    ):
        with pytest.raises(PolyretError) as e:
            read()
        errors.append(str(e.value))
    for msg in errors:
        assert words in msg and "en.json" in msg, msg
    if "q1" in where:
        assert all("q1" in msg for msg in errors), errors
    assert not (tmp_path / "beir").exists()


def test_lareqa_without_any_paragraph_is_an_error(tmp_path):
    from polyret.data.lareqa import load_lareqa
    from polyret.data.pairs import build_groups

    d = _write_lareqa(tmp_path / "lareqa", None)
    with pytest.raises(PolyretError, match="no questions in"):
        load_lareqa(d)
    with pytest.raises(PolyretError, match="no parallel groups could be built"):
        build_groups([d], unit="sentence")


@pytest.mark.parametrize("text", ["", "   "])
def test_beir_blank_query_is_an_error(tmp_path, text):
    from polyret.data.beir import read_queries

    p = tmp_path / "queries.jsonl"
    p.write_text(json.dumps({"_id": "q1", "text": "fine"}) + "\n" + json.dumps({"_id": "q2", "text": text}) + "\n")
    with pytest.raises(PolyretError, match=r"line 2: query 'q2' has empty text"):
        read_queries(p)


def test_latin1_inputs_name_file_and_byte(tmp_path):
    from polyret.data.groups import read_groups_jsonl
    from polyret.data.xnli import read_xnli_tsv
    from polyret.encode import read_encode_input

    raw = "caf\u00e9\n".encode("latin-1")
    for name, read in (
        ("t.txt", read_encode_input),
        ("g.jsonl", read_groups_jsonl),
        ("x.tsv", read_xnli_tsv),
        ("q.jsonl", lambda p: __import__("polyret.data.beir", fromlist=["x"]).read_queries(p)),
    ):
        p = tmp_path / name
        p.write_bytes(raw)
        with pytest.raises(PolyretError, match=rf"{name} is not UTF-8 text: byte 3 \(line 1\)"):
            read(p)


def test_encode_checks_the_npy_it_writes_and_refuses_batch_size_0(tmp_path, tiny_model):
    model = tmp_path / "m"
    tiny_model.save(str(model))
    (tmp_path / "t.txt").write_text("a\nb\n")
    (tmp_path / "emb.npy").write_bytes(b"precious")
    r = polyret("encode", "--model", model, "--input", "t.txt", "--out", "emb", cwd=tmp_path)
    assert r.returncode == 2 and "emb.npy exists" in r.stderr
    assert (tmp_path / "emb.npy").read_bytes() == b"precious"
    r = polyret("encode", "--model", model, "--input", "t.txt", "--out", "new", "--batch-size", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--batch-size" in r.stderr and "Loading" not in r.stderr
    r = polyret("encode", "--model", model, "--input", "t.txt", "--out", "t.txt.npy", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0  # t.txt.npy is not the input t.txt
    r = polyret("encode", "--model", model, "--input", "t.txt", "--out", "emb", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import numpy as np

    assert np.load(tmp_path / "emb.npy").shape == (2, 32)
    assert not (tmp_path / "emb").exists()


def test_merge_out_equal_to_tuned_is_refused_and_kept(tmp_path, tiny_model):
    tuned = tmp_path / "tuned"
    tiny_model.save(str(tuned))
    files = sorted(p.name for p in tuned.iterdir())
    for out in (tuned, tuned / "inside"):
        r = polyret(
            "merge", "--base", tuned, "--tuned", tuned, "--weight", "0.5", "--out", out, "--overwrite", cwd=tmp_path
        )
        assert r.returncode == 2 and "input" in r.stderr, r.stderr
    assert sorted(p.name for p in tuned.iterdir()) == files


def test_merge_overwrite_with_a_bad_model_keeps_the_old_output(tmp_path, tiny_model):
    base = tmp_path / "base"
    tiny_model.save(str(base))
    out = tmp_path / "merged"
    assert (
        polyret("merge", "--base", base, "--tuned", base, "--weight", "0.5", "--out", out, cwd=tmp_path).returncode == 0
    )
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = polyret(
        "merge",
        "--base",
        base,
        "--tuned",
        tmp_path / "missing",
        "--weight",
        "0.5",
        "--out",
        out,
        "--overwrite",
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "merged"]
    # a folder polyret did not make is never replaced, --overwrite or not
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    r = polyret("merge", "--base", base, "--tuned", base, "--weight", "0.5", "--out", mine, "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "not written by polyret" in r.stderr
    assert (mine / "notes.txt").read_text() == "keep"
