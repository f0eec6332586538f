"""A sweep of bad or unusual inputs through the real `polyret` entry point, tallied as issue 14 did.

    .venv/bin/python benchmarks/bad_inputs.py [--src DIR]   # DIR: a checkout's src/ to test (default: this one)

Each case builds its inputs in a fresh temp folder (a random tiny model where a model is needed), runs
one command, and is classified:

- `clear error`: exit 2 (or the documented code), one message containing the expected words (each a string
  or a list of accepted spellings, e.g. `file line 2` / `file:2`), no traceback;
- `handled`: the command succeeded and did the right thing;
- `traceback`: a Python traceback was printed;
- `wrong exit 0`: exit 0 where the input was bad (a meaningless result or a lost failure);
- `file lost`: a file or folder that existed before the command was changed or deleted;
- `confusing`: a non-zero exit without the expected words (or with them garbled);
- `n/a`: the option or command does not exist in the version tested.

Run it once with `--src` pointing at an older checkout to compare (PYTHONPATH decides which polyret runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

POLYRET = str(Path(sys.executable).parent / "polyret")
ENV: dict[str, str] = {}  # PYTHONPATH etc. of the polyret under test (setups that run polyret use it too)


def tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def lareqa_file(d: Path, par: dict | None, langs=("de", "en")) -> Path:
    good = {
        "context": "One two. Three four.",
        "sentence_breaks": [[0, 8], [9, 20]],
        "sentences": ["One two.", "Three four."],
        "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Three", "answer_start": 9}]}],
    }
    d.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        p = par if lang == "en" else (good if par else None)
        (d / f"{lang}.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": [p] if p else []}]}))
    return d


def bad_par(**over) -> dict:
    par = {
        "context": "One two. Three four.",
        "sentence_breaks": [[0, 8], [9, 20]],
        "sentences": ["One two.", "Three four."],
        "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Three", "answer_start": 9}]}],
    }
    par.update(over)
    return par


def cases(tiny: str):
    """(name, setup(tmp) -> args, expected words, expected exit code, protected paths)."""

    def foreign(t: Path, name="mine") -> Path:
        d = t / name
        d.mkdir()
        (d / "thesis.tex").write_text("precious")
        return d

    def beir(t: Path, query_text: str) -> Path:
        d = t / "beir"
        (d / "qrels").mkdir(parents=True)
        (d / "corpus.jsonl").write_text(
            "".join(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n" for i in range(200))
        )
        (d / "queries.jsonl").write_text(
            json.dumps({"_id": "q1", "text": "doc 1"}) + "\n" + json.dumps({"_id": "q2", "text": query_text}) + "\n"
        )
        (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
        return d

    def sums(t: Path) -> Path:
        d = t / "data" / "lareqa" / "xquad-r"
        d.mkdir(parents=True)
        (d / "en.json").write_text("{}")
        (t / "data" / "SHA256SUMS").write_text("0" * 64 + "  lareqa/xquad-r/en.json\n")
        return t / "data"

    return [
        (
            "merge --overwrite onto a folder polyret did not make",
            lambda t: ["merge", "--base", tiny, "--tuned", tiny, "--weight", "0.5", "--out", foreign(t), "--overwrite"],
            "not written by polyret",
            2,
            ["mine"],
        ),
        (
            "merge --out equal to --tuned, --overwrite",
            lambda t: [
                "merge",
                "--base",
                tiny,
                "--tuned",
                t / "tuned",
                "--weight",
                "0.5",
                "--out",
                t / "tuned",
                "--overwrite",
            ],
            "input",
            2,
            ["tuned"],
        ),
        (
            "train --overwrite onto a foreign folder with a bad model path",
            lambda t: ["train", "--out", foreign(t), "--overwrite", "--model", t / "no-model", "--steps", "2"],
            "not written by polyret",
            2,
            ["mine"],
        ),
        (
            "train with a bad model path leaves no half-made run dir",
            lambda t: ["train", "--out", t / "run", "--model", t / "no-model", "--steps", "2"],
            "no-model",
            2,
            [],
        ),
        (
            "encode --out emb with an existing emb.npy",
            lambda t: (
                (t / "emb.npy").write_bytes(b"keep")
                and None
                or ["encode", "--model", tiny, "--input", t / "in.txt", "--out", t / "emb"]
            ),
            "emb.npy exists",
            2,
            ["emb.npy"],
        ),
        (
            "encode a Latin-1 text file",
            lambda t: (
                (t / "l1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
                and None
                or ["encode", "--model", tiny, "--input", t / "l1.txt", "--out", t / "o.npy"]
            ),
            "byte 3",
            2,
            [],
        ),
        (
            "encode --batch-size 0",
            lambda t: ["encode", "--model", tiny, "--input", t / "in.txt", "--out", t / "o.npy", "--batch-size", "0"],
            "--batch-size",
            2,
            [],
        ),
        (
            "encode: error text with [brackets] in the path",
            lambda t: ["encode", "--input", t / "runs [old]" / "x.txt", "--out", t / "o"],
            "runs [old]/x.txt",
            2,
            [],
        ),
        ("data status: checksum mismatch", lambda t: ["data", "status", "--data", sums(t)], "", 1, []),
        ("data status --json: checksum mismatch", lambda t: ["data", "status", "--json", "--data", sums(t)], "", 1, []),
        (
            "eval lareqa: answer_start outside the context",
            lambda t: [
                "eval",
                "lareqa",
                "--model",
                tiny,
                "--no-cache",
                "--data",
                lareqa_file(
                    t / "lq",
                    bad_par(qas=[{"id": "q1", "question": "W?", "answers": [{"text": "x", "answer_start": 99}]}]),
                ),
                "--out",
                t / "o",
                "--no-progress",
            ],
            "q1",
            2,
            [],
        ),
        (
            "eval lareqa: every paragraphs list empty",
            lambda t: [
                "eval",
                "lareqa",
                "--model",
                tiny,
                "--no-cache",
                "--data",
                lareqa_file(t / "lq", None),
                "--out",
                t / "o",
                "--no-progress",
            ],
            "no questions",
            2,
            [],
        ),
        (
            "eval beir: empty query text",
            lambda t: ["eval", "beir", "--model", tiny, "--data", beir(t, ""), "--out", t / "o", "--no-progress"],
            "empty text",
            2,
            [],
        ),
        (
            "eval beir: blank query text",
            lambda t: ["eval", "beir", "--model", tiny, "--data", beir(t, "   "), "--out", t / "o", "--no-progress"],
            "empty text",
            2,
            [],
        ),
        (
            "train: steps: yes in the YAML",
            lambda t: (
                (t / "c.yaml").write_text("steps: yes\n")
                and None
                or ["train", "--config", t / "c.yaml", "--out", t / "run", "--model", tiny]
            ),
            "steps",
            2,
            [],
        ),
        (
            "build-pairs: empty JSONL",
            lambda t: (
                (t / "e.jsonl").write_text("")
                and None
                or ["data", "build-pairs", "--from", t / "e.jsonl", "--out", t / "p.jsonl"]
            ),
            "no groups",
            2,
            [],
        ),
        (
            "build-pairs: Latin-1 JSONL",
            lambda t: (
                (t / "l.jsonl").write_bytes('{"id": "caf\xe9"}\n'.encode("latin-1"))
                and None
                or ["data", "build-pairs", "--from", t / "l.jsonl", "--out", t / "p.jsonl"]
            ),
            "byte",
            2,
            [],
        ),
        (
            "build-pairs: LAReQA sentence_breaks are strings",
            lambda t: [
                "data",
                "build-pairs",
                "--from",
                lareqa_file(t / "lq", bad_par(sentence_breaks=[["0", "8"], ["9", "20"]])) / "en.json",
                "--out",
                t / "p.jsonl",
            ],
            "sentence_breaks[0]",
            2,
            [],
        ),
        (
            "build-pairs: LAReQA sentences are numbers",
            lambda t: [
                "data",
                "build-pairs",
                "--from",
                lareqa_file(t / "lq", bad_par(sentences=[1, 2])) / "en.json",
                "--out",
                t / "p.jsonl",
            ],
            "sentences[0]",
            2,
            [],
        ),
        (
            "build-pairs: LAReQA answer_start outside the context (paragraph unit)",
            lambda t: [
                "data",
                "build-pairs",
                "--unit",
                "paragraph",
                "--from",
                lareqa_file(
                    t / "lq",
                    bad_par(qas=[{"id": "q1", "question": "W?", "answers": [{"text": "x", "answer_start": 99}]}]),
                )
                / "en.json",
                "--out",
                t / "p.jsonl",
            ],
            "answer_start 99",
            2,
            [],
        ),
        (
            "build-pairs --out onto its own input, --overwrite",
            lambda t: (
                (t / "g.jsonl").write_text(
                    json.dumps({"id": "g", "queries": {"de": "q"}, "positives": {"de": "p"}}) + "\n"
                )
                and None
                or ["data", "build-pairs", "--from", t / "g.jsonl", "--out", t / "g.jsonl", "--overwrite"]
            ),
            "input",
            2,
            ["g.jsonl"],
        ),
        (
            "export-beir --out inside the LAReQA folder",
            lambda t: [
                "data",
                "export-beir",
                "--data",
                lareqa_file(t / "lq", bad_par()),
                "--setting",
                "multi",
                "--out",
                t / "lq" / "beir",
            ],
            "input",
            2,
            ["lq"],
        ),
        (
            "eval lareqa --overwrite onto a foreign folder",
            lambda t: [
                "eval",
                "lareqa",
                "--model",
                tiny,
                "--no-cache",
                "--data",
                lareqa_file(t / "lq", bad_par()),
                "--out",
                foreign(t),
                "--overwrite",
                "--no-progress",
            ],
            "not written by polyret",
            2,
            ["mine"],
        ),
        (
            "eval xnli --out onto a foreign non-empty folder",
            lambda t: ["eval", "xnli", "--model", tiny, "--data", t / "nope", "--out", foreign(t)],
            "",
            2,
            ["mine"],
        ),
        (
            "model prepare --out an existing file",
            lambda t: (t / "f").write_text("x") and None or ["model", "prepare", "--out", t / "f"],
            [["not a folder", "is a file"]],
            2,
            ["f"],
        ),
        *more_cases(tiny, foreign, beir, lareqa_file, bad_par),
        *disk_cases(tiny, beir, lareqa_file, bad_par),
    ]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


def jsonl(path: Path, rows) -> Path:
    return write(path, "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def groups(path: Path, n: int = 12, broken: dict | None = None) -> Path:
    """Group JSONL (the training format); record `broken` replaces line 3 when given."""
    rows = [
        {
            "id": f"g{i}",
            "queries": {"de": f"frage {i}", "en": f"question {i}"},
            "positives": {"de": f"antwort {i} hier", "en": f"answer {i} here"},
        }
        for i in range(n)
    ]
    if broken is not None:
        rows[2] = broken
    return jsonl(path, rows)


def xnli(d: Path, bad_line: str | None = None) -> Path:
    header = ""  # polyret's XNLI TSVs: premise, hypothesis, label; no header line
    rows = [f"p{i} text\th{i} text\t{['entailment', 'neutral', 'contradiction'][i % 3]}" for i in range(9)]
    if bad_line is not None:
        rows[4] = bad_line
    for lang in ("de", "en"):
        write(d / f"dev-{lang}.tsv", header + "\n".join(rows) + "\n")
    return d


def more_cases(tiny: str, foreign, beir, lareqa_file, bad_par):
    """Cases beyond the issue's worst ones: bad records, bad options and output safety in every command."""

    def run_first(t: Path, *argv) -> None:  # make a finished output with the polyret under test
        subprocess.run([POLYRET, *map(str, argv)], cwd=t, env=dict(os.environ, **ENV), capture_output=True, timeout=600)

    def beir_with(t: Path, corpus=None, queries=None, qrels=None) -> Path:
        d = beir(t, "doc 2")
        if corpus is not None:
            write(d / "corpus.jsonl", corpus)
        if queries is not None:
            write(d / "queries.jsonl", queries)
        if qrels is not None:
            write(d / "qrels" / "test.tsv", qrels)
        return d

    def ev_beir(t: Path, data: Path, *extra):
        return ["eval", "beir", "--model", tiny, "--data", data, "--out", t / "o", "--no-progress", *extra]

    def ev_lareqa(t: Path, data: Path, *extra):
        return [
            "eval",
            "lareqa",
            "--model",
            tiny,
            "--no-cache",
            "--data",
            data,
            "--out",
            t / "o",
            "--no-progress",
            *extra,
        ]

    def train_yaml(t: Path, text: str) -> Path:
        return write(t / "c.yaml", text)

    def finished_lareqa(t: Path) -> Path:
        run_first(t, *ev_lareqa(t, lareqa_file(t / "lq", bad_par())))
        return t / "o"

    good_doc = json.dumps({"_id": "d1", "text": "doc 1"})
    return [
        # ---- output safety: nothing a user made is replaced, a failed run keeps the old output ----
        (
            "eval beir --out onto a folder polyret did not make",
            lambda t: ev_beir(t, beir(t, "doc 2"))[:-2] + [foreign(t), "--no-progress"],
            "not written by polyret",
            2,
            ["mine"],
        ),
        (
            "eval beir --overwrite onto a folder polyret did not make",
            lambda t: ev_beir(t, beir(t, "doc 2"))[:-2] + [foreign(t), "--no-progress", "--overwrite"],
            "not written by polyret",
            2,
            ["mine"],
        ),
        (
            "eval beir --out inside the BEIR data folder",
            lambda t: ev_beir(t, beir(t, "doc 2"))[:-2] + [t / "beir" / "out", "--no-progress"],
            "input",
            2,
            ["beir"],
        ),
        (
            "eval tatoeba --overwrite onto a folder polyret did not make",
            lambda t: [
                "eval",
                "tatoeba",
                "--model",
                tiny,
                "--langs",
                "deu",
                "--data",
                t / "nope",
                "--out",
                foreign(t),
                "--overwrite",
            ],
            "",
            2,
            ["mine"],
        ),
        (
            "export-beir --overwrite onto a folder polyret did not make",
            lambda t: [
                "data",
                "export-beir",
                "--data",
                lareqa_file(t / "lq", bad_par()),
                "--setting",
                "multi",
                "--out",
                foreign(t),
                "--overwrite",
            ],
            "not written by polyret",
            2,
            ["mine"],
        ),
        (
            "encode --input a folder",
            lambda t: ["encode", "--model", tiny, "--input", foreign(t), "--out", t / "o"],
            "mine",
            2,
            ["mine"],
        ),
        (
            "build-pairs --out an existing file without --overwrite",
            lambda t: ["data", "build-pairs", "--from", groups(t / "g.jsonl"), "--out", write(t / "p.jsonl", "keep\n")],
            "exists",
            2,
            ["p.jsonl"],
        ),
        (
            "eval lareqa --overwrite with a missing --data keeps the finished output",
            lambda t: finished_lareqa(t) and ev_lareqa(t, t / "missing", "--overwrite"),
            "missing",
            2,
            ["o"],
        ),
        (
            "experiment --out onto a folder polyret did not make",
            lambda t: ["experiment", write(t / "e.yaml", "name: x\n"), "--out", foreign(t)],
            "",
            2,
            ["mine"],
        ),
        (
            "merge --out onto an existing file",
            lambda t: ["merge", "--base", tiny, "--tuned", tiny, "--weight", "0.5", "--out", write(t / "m", "x")],
            "m",
            2,
            ["m"],
        ),
        # ---- options out of range or misspelt ----
        (
            "encode --kind bogus",
            lambda t: ["encode", "--model", tiny, "--input", t / "in.txt", "--out", t / "o", "--kind", "bogus"],
            "bogus",
            2,
            [],
        ),
        (
            "encode: empty input file",
            lambda t: ["encode", "--model", tiny, "--input", write(t / "e.txt", ""), "--out", t / "o"],
            "e.txt",
            2,
            [],
        ),
        (
            "encode: JSONL line without the text field",
            lambda t: [
                "encode",
                "--model",
                tiny,
                "--input",
                jsonl(t / "t.jsonl", [{"text": "a"}, {"body": "b"}]),
                "--out",
                t / "o",
            ],
            (["t.jsonl line 2", "t.jsonl:2"],),
            2,
            [],
        ),
        (
            "encode: JSONL line that is not JSON",
            lambda t: [
                "encode",
                "--model",
                tiny,
                "--input",
                jsonl(t / "t.jsonl", ['{"text": "a"}', '{"text": ']),
                "--out",
                t / "o",
            ],
            (["t.jsonl line 2", "t.jsonl:2"],),
            2,
            [],
        ),
        (
            "encode --model a missing folder",
            lambda t: ["encode", "--model", t / "no-model", "--input", t / "in.txt", "--out", t / "o"],
            "no-model",
            2,
            [],
        ),
        (
            "train --strategy bogus",
            lambda t: [
                "train",
                "--out",
                t / "run",
                "--model",
                tiny,
                "--strategy",
                "bogus",
                "--config",
                train_yaml(t, f"data: [{groups(t / 'g.jsonl')}]\n"),
            ],
            "bogus",
            2,
            [],
        ),
        (
            "train --batch-size 0",
            lambda t: [
                "train",
                "--out",
                t / "run",
                "--model",
                tiny,
                "--batch-size",
                "0",
                "--config",
                train_yaml(t, f"data: [{groups(t / 'g.jsonl')}]\n"),
            ],
            "batch",
            2,
            [],
        ),
        (
            "train: YAML syntax error",
            lambda t: ["train", "--out", t / "run", "--config", train_yaml(t, "steps: [1\nlr: 2\n")],
            "c.yaml",
            2,
            [],
        ),
        (
            "train: unknown config key",
            lambda t: ["train", "--out", t / "run", "--config", train_yaml(t, "stepz: 3\n")],
            "stepz",
            2,
            [],
        ),
        (
            "train: data file missing",
            lambda t: [
                "train",
                "--out",
                t / "run",
                "--model",
                tiny,
                "--steps",
                "2",
                "--config",
                train_yaml(t, f"data: [{t / 'nothere.jsonl'}]\n"),
            ],
            "nothere.jsonl",
            2,
            [],
        ),
        (
            "train: group record without positives",
            lambda t: [
                "train",
                "--out",
                t / "run",
                "--model",
                tiny,
                "--steps",
                "2",
                "--config",
                train_yaml(t, f"data: [{groups(t / 'g.jsonl', broken={'id': 'g2', 'queries': {'de': 'x'}})}]\n"),
            ],
            "line 3",
            2,
            [],
        ),
        (
            "train --resume on a folder polyret did not make",
            lambda t: ["train", "--out", foreign(t), "--model", tiny, "--resume"],
            "mine",
            2,
            ["mine"],
        ),
        (
            "merge --weight nan",
            lambda t: ["merge", "--base", tiny, "--tuned", tiny, "--weight", "nan", "--out", t / "m"],
            "weight",
            2,
            [],
        ),
        (
            "merge: models of different shapes",
            lambda t: (
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        f"from polyret.model import build_tiny_model as b; b({str(t / 'h16')!r}, hidden=16)",
                    ],
                    env=dict(os.environ, **ENV),
                    check=True,
                    capture_output=True,
                )
                and ["merge", "--base", tiny, "--tuned", t / "h16" / "st", "--weight", "0.5", "--out", t / "m"]
            ),
            "shape",
            2,
            [],
        ),
        (
            "experiment: config file missing",
            lambda t: ["experiment", t / "nope.yaml", "--out", t / "x"],
            "nope.yaml",
            2,
            [],
        ),
        (
            "experiment: config without suites",
            lambda t: ["experiment", write(t / "e.yaml", "name: x\nbase_models: [tiny]\n"), "--out", t / "x"],
            ("e.yaml", "missing key"),
            2,
            [],
        ),
        (
            "data download --only bogus",
            lambda t: ["data", "download", "--dest", t / "d", "--only", "bogus"],
            "bogus",
            2,
            [],
        ),
        (
            "data download from an unreachable mirror",
            lambda t: ["data", "download", "--dest", t / "d", "--only", "xquad-r", "--mirror", "http://127.0.0.1:9"],
            "127.0.0.1",
            2,
            [],
        ),
        # ---- eval beir: bad records ----
        (
            "eval beir: corpus line that is not JSON",
            lambda t: ev_beir(t, beir_with(t, corpus=good_doc + "\n" + '{"_id": "d2", "text": \n')),
            ("corpus.jsonl", "line 2"),
            2,
            [],
        ),
        (
            "eval beir: duplicate document id",
            lambda t: ev_beir(t, beir_with(t, corpus=good_doc + "\n" + good_doc + "\n")),
            ("corpus.jsonl", "d1"),
            2,
            [],
        ),
        (
            "eval beir: Latin-1 corpus",
            lambda t: ev_beir(
                t, beir_with(t, corpus=(good_doc + "\n" + '{"_id": "d2", "text": "caf\xe9"}\n').encode("latin-1"))
            ),
            ("corpus.jsonl", "byte"),
            2,
            [],
        ),
        ("eval beir: empty corpus", lambda t: ev_beir(t, beir_with(t, corpus="")), "corpus", 2, []),
        (
            "eval beir: qrels file missing",
            lambda t: (lambda d: (d / "qrels" / "test.tsv").unlink() or ev_beir(t, d))(beir(t, "doc 2")),
            "test.tsv",
            2,
            [],
        ),
        (
            "eval beir: qrels score not a number",
            lambda t: ev_beir(t, beir_with(t, qrels="query-id\tcorpus-id\tscore\nq1\td1\tyes\n")),
            ("test.tsv", "line 2"),
            2,
            [],
        ),
        (
            "eval beir: duplicate query id",
            lambda t: ev_beir(
                t,
                beir_with(
                    t,
                    queries=json.dumps({"_id": "q1", "text": "a"})
                    + "\n"
                    + json.dumps({"_id": "q1", "text": "b"})
                    + "\n",
                ),
            ),
            ("queries.jsonl", "q1"),
            2,
            [],
        ),
        (
            "eval beir: qrels name no query that exists",
            lambda t: ev_beir(t, beir_with(t, qrels="query-id\tcorpus-id\tscore\nqX\td1\t1\n")),
            "qX",
            2,
            [],
        ),
        ("eval beir --k 50", lambda t: ev_beir(t, beir(t, "doc 2"), "--k", "50"), "100", 2, []),
        # ---- eval lareqa: bad records ----
        (
            "eval lareqa: file that is not JSON",
            lambda t: ev_lareqa(t, write(t / "lq" / "en.json", '{"data": [') and t / "lq"),
            ("en.json", "line 1"),
            2,
            [],
        ),
        (
            "eval lareqa: file without a data list",
            lambda t: ev_lareqa(t, write(t / "lq" / "en.json", '{"version": 1}') and t / "lq"),
            ("en.json", "data"),
            2,
            [],
        ),
        (
            "eval lareqa: sentence_breaks beyond the context",
            lambda t: ev_lareqa(t, lareqa_file(t / "lq", bad_par(sentence_breaks=[[0, 8], [9, 80]]))),
            ("en.json", "sentence_breaks"),
            2,
            [],
        ),
        (
            "eval lareqa: question without answers",
            lambda t: ev_lareqa(t, lareqa_file(t / "lq", bad_par(qas=[{"id": "q1", "question": "W?", "answers": []}]))),
            "q1",
            2,
            [],
        ),
        (
            "eval lareqa --candidate bogus",
            lambda t: ev_lareqa(t, lareqa_file(t / "lq", bad_par()), "--candidate", "bogus"),
            "bogus",
            2,
            [],
        ),
        (
            "eval lareqa --langs with a language not in the folder",
            lambda t: ev_lareqa(t, lareqa_file(t / "lq", bad_par()), "--langs", "de,xx"),
            "xx",
            2,
            [],
        ),
        (
            "eval lareqa: Latin-1 file",
            lambda t: ev_lareqa(
                t, write(t / "lq" / "en.json", '{"data": [], "t": "caf\xe9"}'.encode("latin-1")) and t / "lq"
            ),
            ("en.json", "byte"),
            2,
            [],
        ),
        # ---- eval xnli / tatoeba / miracl ----
        (
            "eval xnli: TSV row with a missing column",
            lambda t: [
                "eval",
                "xnli",
                "--model",
                tiny,
                "--data",
                xnli(t / "x", "only premise"),
                "--out",
                t / "o",
                "--english-train",
                xnli(t / "x", "only premise") / "dev-en.tsv",
                "--no-progress",
            ],
            ("dev-", "line 5"),
            2,
            [],
        ),
        (
            "eval xnli: unknown label",
            lambda t: [
                "eval",
                "xnli",
                "--model",
                tiny,
                "--data",
                xnli(t / "x", "p\th\tmaybe"),
                "--out",
                t / "o",
                "--english-train",
                xnli(t / "x", "p\th\tmaybe") / "dev-en.tsv",
                "--no-progress",
            ],
            ("maybe", "line 5"),
            2,
            [],
        ),
        (
            "eval tatoeba: unknown language",
            lambda t: (
                write(t / "tt" / "tatoeba.deu-eng.deu", "eins\nzwei\n")
                and write(t / "tt" / "tatoeba.deu-eng.eng", "one\ntwo\n")
                and ["eval", "tatoeba", "--model", tiny, "--langs", "zzz", "--data", t / "tt"]
            ),
            "zzz",
            2,
            [],
        ),
        (
            "eval miracl: corpus path missing",
            lambda t: [
                "eval",
                "miracl",
                "--model",
                tiny,
                "--lang",
                "de",
                "--corpus",
                t / "no-corpus.jsonl",
                "--out",
                t / "o",
                "--topics",
                write(t / "topics.tsv", "1\tfrage\n"),
                "--qrels",
                write(t / "qrels.tsv", "1 Q0 d1 1\n"),
            ],
            "no-corpus.jsonl",
            2,
            [],
        ),
        # ---- data build-pairs / export-beir ----
        (
            "build-pairs: group JSONL line that is not JSON",
            lambda t: [
                "data",
                "build-pairs",
                "--from",
                groups(t / "g.jsonl", broken='{"id": '),
                "--out",
                t / "p.jsonl",
            ],
            ("g.jsonl", "line 3"),
            2,
            [],
        ),
        (
            "build-pairs: LAReQA answer_start outside the context (sentence unit)",
            lambda t: [
                "data",
                "build-pairs",
                "--from",
                lareqa_file(
                    t / "lq",
                    bad_par(qas=[{"id": "q1", "question": "W?", "answers": [{"text": "x", "answer_start": 99}]}]),
                )
                / "en.json",
                "--out",
                t / "p.jsonl",
            ],
            "answer_start 99",
            2,
            [],
        ),
        (
            "export-beir --setting mono: with a language not in the folder",
            lambda t: [
                "data",
                "export-beir",
                "--data",
                lareqa_file(t / "lq", bad_par()),
                "--setting",
                "mono:xx",
                "--out",
                t / "b",
            ],
            "xx",
            2,
            [],
        ),
    ]


HOLDERS: list[subprocess.Popen] = []  # processes a case started to hold an output folder (killed after it)


def _numbers(obj, path="") -> dict[str, float]:
    """The numeric leaves of a results.json, timings and dates left out (they differ between runs)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not any(w in k.lower() for w in ("tim", "second", "_s", "updated", "elapsed", "per_s", "rate")):
                out.update(_numbers(v, f"{path}/{k}"))
        return out
    if isinstance(obj, list):
        return {k: v for i, x in enumerate(obj) for k, v in _numbers(x, f"{path}[{i}]").items()}
    return {path: obj} if isinstance(obj, (int, float)) and not isinstance(obj, bool) else {}


def disk_cases(tiny: str, beir, lareqa_file, bad_par):  # noqa: C901  (a case table: one small damage helper per case)
    """Issue 28: what polyret reads back from disk (model folders, stores, caches, corrections, output
    folders), damaged after it was written. A re-run case passes only when its numbers equal the first run's."""
    import numpy as np

    def run_first(t: Path, *argv) -> None:
        r = subprocess.run(
            [POLYRET, *map(str, argv)],
            cwd=t,
            env=dict(os.environ, **ENV, POLYRET_CACHE=str(t / "cache")),
            capture_output=True,
            text=True,
            timeout=900,
        )
        if r.returncode:
            raise RuntimeError(f"first run failed: {r.stderr[-300:]}")

    def model(t: Path, damage) -> Path:
        d = t / "tuned"  # run_case's copy of the tiny model
        damage(d)
        return d

    def no_tokenizer(d: Path) -> None:
        (d / "tokenizer.json").unlink()
        (d / "tokenizer_config.json").unlink()

    def truncate(path: Path, keep: float = 0.5) -> None:
        with open(path, "r+b") as f:
            f.truncate(int(path.stat().st_size * keep))

    def other_tokenizer(d: Path) -> None:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tokenizers import Tokenizer; from tokenizers.models import WordLevel; "
                "Tokenizer(WordLevel({'<unk>': 0, '<pad>': 1, 'a': 2}, unk_token='<unk>')).save(sys.argv[1])",
                str(d / "tokenizer.json"),
            ],
            check=True,
            capture_output=True,
        )

    def ev_beir(t: Path, *extra):
        return ["eval", "beir", "--model", tiny, "--data", t / "beir", "--out", t / "o", "--no-progress", *extra]

    def ev_lareqa(t: Path, *extra):
        return ["eval", "lareqa", "--model", tiny, "--data", t / "lq", "--out", t / "o", "--no-progress", *extra]

    def finished(t: Path, argv: list) -> list:
        """Run argv once (a finished output to damage), remember its numbers, return argv for the re-run."""
        beir(t, "doc 2")
        lareqa_file(t / "lq", bad_par())
        run_first(t, *argv)
        (t / "first.json").write_text((t / "o" / "results.json").read_text())
        return argv

    def same_numbers(t: Path) -> bool:
        first, now = (_numbers(json.loads((t / n).read_text())) for n in ("first.json", "o/results.json"))
        return bool(first) and first == now

    def store(t: Path) -> Path:
        return next((t / "o").rglob("embeddings.npy"))

    def poke_rows(path: Path, rows, value) -> None:
        header = 128  # polyret's stores are .npy version 1.0 files: a 128-byte header for these shapes
        with open(path, "r+b") as f:
            for r in rows:
                f.seek(header + r * 32 * 4)
                f.write(np.full(32, value, np.float32).tobytes())

    def swap_ids(path: Path) -> None:
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")

    def cache_vectors(t: Path) -> list[Path]:
        return sorted((t / "cache").rglob("vectors.f32"))

    def corrected(t: Path) -> Path:
        texts = {
            lang: write(t / f"{lang}.txt", "".join(f"{lang} text number {i}\n" for i in range(25)))
            for lang in ("de", "en")
        }
        run_first(
            t,
            "correction",
            "fit",
            "--model",
            t / "tuned",
            "--parallel",
            "none",
            "--method",
            "center",
            "--texts",
            f"de={texts['de']}",
            "--texts",
            f"en={texts['en']}",
        )
        return t / "tuned" / "language_correction"

    def other_model_id(t: Path) -> None:
        meta = corrected(t) / "correction.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "model_id": "0123456789abcdef"}))

    def other_width(t: Path) -> None:
        npz = corrected(t) / "stats.npz"
        arrays = dict(np.load(npz))
        arrays["de/passage_mean"] = np.zeros(7, np.float32)
        np.savez(npz, **arrays)

    def hold_out(t: Path, kind: str) -> None:
        p = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time; from polyret.io import OutputDir; "
                f"o = OutputDir(sys.argv[1], {kind!r}); print('held', flush=True); time.sleep(300)",
                str(t / "o"),
            ],
            env=dict(os.environ, **ENV),
            stdout=subprocess.PIPE,
            text=True,
        )
        HOLDERS.append(p)
        p.stdout.readline()

    def stale_lock(t: Path) -> None:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        write(
            t / ".o.polyret-lock",
            json.dumps({"pid": int(dead), "host": "here", "started": "earlier", "command": "polyret"}),
        )

    def mode_is(rel: str, mode: int):
        return lambda t: (t / rel).stat().st_mode & 0o777 == mode

    return [
        # ---- model folders: one loader checks them before any work ----
        (
            "encode: model folder without its tokenizer files",
            lambda t: ["encode", "--model", model(t, no_tokenizer), "--input", t / "in.txt", "--out", t / "o.npy"],
            "tokenizer",
            2,
            [],
        ),
        (
            "merge: tuned model without its tokenizer files",
            lambda t: ["merge", "--base", tiny, "--tuned", model(t, no_tokenizer), "--weight", "0.5", "--out", t / "m"],
            "tokenizer",
            2,
            [],
        ),
        (
            "model info: truncated model.safetensors",
            lambda t: ["model", "info", "--model", model(t, lambda d: truncate(d / "model.safetensors"))],
            "model.safetensors",
            2,
            [],
        ),
        (
            "encode: truncated model.safetensors",
            lambda t: [
                "encode",
                "--model",
                model(t, lambda d: truncate(d / "model.safetensors", 0.99)),
                "--input",
                t / "in.txt",
                "--out",
                t / "o.npy",
            ],
            "model.safetensors",
            2,
            [],
        ),
        (
            "merge: base model with truncated weights",
            lambda t: [
                "merge",
                "--base",
                model(t, lambda d: truncate(d / "model.safetensors")),
                "--tuned",
                tiny,
                "--weight",
                "0.5",
                "--out",
                t / "m",
            ],
            "model.safetensors",
            2,
            [],
        ),
        (
            "eval lareqa: model folder without its pooling config",
            lambda t: [
                "eval",
                "lareqa",
                "--model",
                model(t, lambda d: (d / "1_Pooling" / "config.json").unlink()),
                "--no-cache",
                "--data",
                lareqa_file(t / "lq", bad_par()),
                "--out",
                t / "o",
                "--no-progress",
            ],
            (["pooling", "Pooling"],),
            2,
            [],
        ),
        (
            "eval beir: model folder without modules.json",
            lambda t: [
                "eval",
                "beir",
                "--model",
                model(t, lambda d: (d / "modules.json").unlink()),
                "--data",
                beir(t, "doc 2"),
                "--out",
                t / "o",
                "--no-progress",
            ],
            "modules.json",
            2,
            [],
        ),
        (
            "model info: tokenizer of another model (vocabulary != embedding rows)",
            lambda t: ["model", "info", "--model", model(t, other_tokenizer)],
            "tokenizer",
            2,
            [],
        ),
        (
            "train: model folder whose tokenizer belongs to another model",
            lambda t: [
                "train",
                "--out",
                t / "run",
                "--model",
                model(t, other_tokenizer),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--config",
                write(t / "c.yaml", f"data: [{groups(t / 'g.jsonl', n=40)}]\nvalidation_groups: 4\n"),
            ],
            "tokenizer",
            2,
            [],
        ),
        (
            "correction fit: model folder with zero-byte weights",
            lambda t: [
                "correction",
                "fit",
                "--model",
                model(t, lambda d: truncate(d / "model.safetensors", 0)),
                "--parallel",
                "none",
                "--texts",
                f"de={t / 'in.txt'}",
            ],
            "model.safetensors",
            2,
            [],
        ),
        # ---- corpus stores polyret wrote, damaged before a re-run ----
        (
            "eval beir re-run: two store rows set to NaN / inf",
            lambda t: (lambda a: poke_rows(store(t), [1], np.nan) or poke_rows(store(t), [2], np.inf) or a)(
                finished(t, ev_beir(t))
            ),
            "re-encoding",
            0,
            [],
            same_numbers,
        ),
        (
            "eval beir re-run: store embeddings.npy truncated",
            lambda t: (lambda a: truncate(store(t), 0.7) or a)(finished(t, ev_beir(t))),
            "re-encoding",
            0,
            [],
            same_numbers,
        ),
        (
            "eval beir re-run: store rows overwritten with other finite numbers",
            lambda t: (lambda a: poke_rows(store(t), [0, 1, 2], 0.125) or a)(finished(t, ev_beir(t))),
            "re-encoding",
            0,
            [],
            same_numbers,
        ),
        (
            "eval beir re-run: two ids swapped in the store's ids.jsonl",
            lambda t: (lambda a: swap_ids(store(t).parent / "ids.jsonl") or a)(finished(t, ev_beir(t))),
            "re-encoding",
            0,
            [],
            same_numbers,
        ),
        (
            "eval beir re-run: the store's progress.json is not JSON",
            lambda t: (lambda a: write(store(t).parent / "progress.json", "{") and a)(finished(t, ev_beir(t))),
            "progress.json",
            2,
            [],
        ),
        # ---- the embedding cache ----
        (
            "eval lareqa re-run: cached vectors overwritten with NaN",
            lambda t: (
                lambda a: (
                    [write(p, np.full(p.stat().st_size // 4, np.nan, np.float32).tobytes()) for p in cache_vectors(t)]
                    and a
                )
            )(finished(t, ev_lareqa(t))),
            "cache",
            0,
            [],
            same_numbers,
        ),
        (
            "eval lareqa re-run: cache entry holding rows of another width",
            lambda t: (
                lambda a: (
                    [write(p, np.ones(p.stat().st_size // 4 * 2, np.float32).tobytes()) for p in cache_vectors(t)] and a
                )
            )(finished(t, ev_lareqa(t))),
            "cache",
            0,
            [],
            same_numbers,
        ),
        # ---- language corrections stored with a model ----
        (
            "correction show: stats.npz truncated",
            lambda t: truncate(corrected(t) / "stats.npz") or ["correction", "show", "--model", t / "tuned"],
            "stats.npz",
            2,
            [],
        ),
        (
            "correction show: correction.json not JSON",
            lambda t: write(corrected(t) / "correction.json", "{") and ["correction", "show", "--model", t / "tuned"],
            "correction.json",
            2,
            [],
        ),
        (
            "correction show: a correction fitted for another model",
            lambda t: other_model_id(t) or ["correction", "show", "--model", t / "tuned"],
            "fitted for model",
            2,
            [],
        ),
        (
            "eval lareqa: the model's stats.npz truncated",
            lambda t: (
                truncate(corrected(t) / "stats.npz")
                or [
                    "eval",
                    "lareqa",
                    "--model",
                    t / "tuned",
                    "--no-cache",
                    "--data",
                    lareqa_file(t / "lq", bad_par()),
                    "--out",
                    t / "o",
                    "--no-progress",
                ]
            ),
            "stats.npz",
            2,
            [],
        ),
        (
            "encode: the model's correction statistics have another width",
            lambda t: (
                other_width(t)
                or ["encode", "--model", t / "tuned", "--input", t / "in.txt", "--out", t / "o.npy", "--lang", "de"]
            ),
            "stats.npz",
            2,
            [],
        ),
        # ---- output folders: one run per --out, the user's umask ----
        (
            "eval beir while another run holds the same --out",
            lambda t: (
                hold_out(t, "eval-beir")
                or ["eval", "beir", "--model", tiny, "--data", beir(t, "doc 2"), "--out", t / "o", "--no-progress"]
            ),
            ("in use", "pid"),
            2,
            [],
        ),
        (
            "eval lareqa --out with a stale lock left by a dead process",
            lambda t: stale_lock(t) or lareqa_file(t / "lq", bad_par()) and ev_lareqa(t),
            "",
            0,
            [],
            lambda t: (t / "o" / "results.json").is_file(),
        ),
        (
            "eval lareqa: results.json honours umask 022",
            lambda t: lareqa_file(t / "lq", bad_par()) and ev_lareqa(t),
            "",
            0,
            [],
            mode_is("o/results.json", 0o644),
        ),
        (
            "merge --overwrite: the swapped-in folder honours umask 022",
            lambda t: (
                run_first(t, "merge", "--base", tiny, "--tuned", tiny, "--weight", "0.3", "--out", t / "m")
                or ["merge", "--base", tiny, "--tuned", tiny, "--weight", "0.5", "--out", t / "m", "--overwrite"]
            ),
            "",
            0,
            [],
            mode_is("m", 0o755),
        ),
    ]


def run_case(i: int, case: tuple, root: Path, tiny: Path, env: dict) -> dict:
    """Build one case's inputs in root/case<i>, run it, classify the outcome (see the module docstring)."""
    import shutil

    name, setup, words, code, protected, *verify = case
    t = root / f"case{i}"
    t.mkdir()
    env = dict(env, POLYRET_CACHE=str(t / "cache"))
    (t / "in.txt").write_text("a\nb\n")
    shutil.copytree(tiny, t / "tuned")
    try:
        argv = [str(a) for a in setup(t)]
        before = {p: tree(t / p) if (t / p).is_dir() else (t / p).read_bytes() for p in protected}
    except Exception as e:  # noqa: BLE001 - a broken case must not end the sweep
        return {"case": name, "exit": None, "verdict": "setup failed", "message": repr(e)[-200:]}
    os.umask(0o022)  # the umask cases expect the common default
    r = subprocess.run([POLYRET, *argv], cwd=t, env=env, capture_output=True, text=True, timeout=1200)
    for holder in HOLDERS:
        holder.kill()
    after = {
        p: (tree(t / p) if (t / p).is_dir() else (t / p).read_bytes()) if (t / p).exists() else None for p in protected
    }
    err = " ".join(r.stderr.split())
    err += " | " + re.sub(r"(\.\w+):(\d+)\b", r"\1 line \2", err)  # `file.jsonl:3` names file and line 3 too
    if "No such option" in r.stderr or "No such command" in r.stderr:
        verdict = "n/a"  # the option or command did not exist in this version
    elif after != before:
        verdict = "file lost"
    elif "Traceback" in r.stderr:
        verdict = "traceback"
    elif r.returncode == 0 and code != 0:
        verdict = "wrong exit 0"
    elif r.returncode == code and all(
        any(x in err for x in ([w] if isinstance(w, str) else w))
        for w in ((words,) if isinstance(words, str) else words)
        if w
    ):
        verdict = "clear error" if code else "handled"
    else:
        verdict = "confusing"
    if r.returncode == 0 and verdict in ("handled", "confusing") and verify and not verify[0](t):
        verdict = "wrong exit 0"  # exit 0, but the numbers (or files) differ from what an undamaged run gives
    if name.startswith("train with a bad model") and (t / "run").exists():
        verdict = "confusing" if verdict == "clear error" else verdict  # a half-made run dir blocks a re-run
    return {"case": name, "exit": r.returncode, "verdict": verdict, "message": err.split(" | ")[0][-200:]}


def main() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", action="append", help="run only the cases whose name contains this text (repeatable)")
    ap.add_argument(
        "--rows", help="append each case's row to this JSONL file as it finishes; rows already in it are not run again"
    )
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (each is its own polyret process)")
    ap.add_argument(
        "--disk", action="store_true", help="only the cases of issue 28 (files polyret reads back from disk)"
    )
    ap.add_argument(
        "--reverse", action="store_true", help="last case first (a second sweep on the same --rows meets the first)"
    )
    args = ap.parse_args()
    ENV.update(PYTHONPATH=args.src, HF_HUB_OFFLINE="1", COLUMNS="300")
    env = dict(os.environ, **ENV)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        subprocess.run(
            [sys.executable, "-c", f"from polyret.model import build_tiny_model as b; b({str(root / 'tiny')!r})"],
            env=env,
            check=True,
            capture_output=True,
        )
        tiny = root / "tiny" / "st"  # the sentence-transformers folder (root/tiny also holds the bare hf/ one)
        done = {}
        if args.rows and Path(args.rows).is_file():  # resume an interrupted sweep
            done = {r["case"]: r for r in map(json.loads, Path(args.rows).read_text().splitlines())}
        all_cases = cases(str(tiny))
        disk = {c[0] for c in disk_cases(str(tiny), *([lambda *a: None] * 3))} if args.disk else set()
        todo = [
            (i, c)
            for i, c in enumerate(all_cases)
            if (not args.only or any(o in c[0] for o in args.only)) and (not args.disk or c[0] in disk)
        ]
        lock = threading.Lock()
        if args.reverse:
            todo.reverse()

        def one(item):
            i, case = item
            if case[0] in done:
                return done[case[0]]
            row = run_case(i, case, root, tiny, env)
            if args.rows and row["verdict"] != "setup failed":
                with lock, open(args.rows, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            return row

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            rows = list(pool.map(one, todo))
        if args.reverse:
            rows.reverse()
    tally = Counter(r["verdict"] for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "tally": tally}, indent=2))
        return
    for r in rows:
        print(f"{r['verdict']:>13}  exit {str(r['exit']):>4}  {r['case']}")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in tally.most_common()) + f"  ({len(rows)} cases)")


if __name__ == "__main__":
    main()
