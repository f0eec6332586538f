"""A sweep of bad or unusual inputs through the real `polyret` entry point, tallied as issue 14 did.

    .venv/bin/python benchmarks/bad_inputs.py [--src DIR]   # DIR: a checkout's src/ to test (default: this one)

Each case builds its inputs in a fresh temp folder (a random tiny model where a model is needed), runs
one command, and is classified:

- `clear error`: exit 2 (or the documented code), one message containing the expected words, no traceback;
- `handled`: the command succeeded and did the right thing;
- `traceback`: a Python traceback was printed;
- `wrong exit 0`: exit 0 where the input was bad (a meaningless result or a lost failure);
- `file lost`: a file or folder that existed before the command was changed or deleted;
- `confusing`: a non-zero exit without the expected words (or with them garbled).

Run it once with `--src` pointing at an older checkout to compare (PYTHONPATH decides which polyret runs).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

POLYRET = str(Path(sys.executable).parent / "polyret")


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def lareqa_file(d: Path, par: dict | None, langs=("de", "en")) -> Path:
    good = {"context": "One two. Three four.", "sentence_breaks": [[0, 8], [9, 20]], "sentences": ["One two.", "Three four."],
            "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Three", "answer_start": 9}]}]}
    d.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        p = par if lang == "en" else (good if par else None)
        (d / f"{lang}.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": [p] if p else []}]}))
    return d


def bad_par(**over) -> dict:
    par = {"context": "One two. Three four.", "sentence_breaks": [[0, 8], [9, 20]], "sentences": ["One two.", "Three four."],
           "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Three", "answer_start": 9}]}]}
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
        (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n" for i in range(200)))
        (d / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "doc 1"}) + "\n" + json.dumps({"_id": "q2", "text": query_text}) + "\n")
        (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
        return d

    def sums(t: Path) -> Path:
        d = t / "data" / "lareqa" / "xquad-r"
        d.mkdir(parents=True)
        (d / "en.json").write_text("{}")
        (t / "data" / "SHA256SUMS").write_text("0" * 64 + "  lareqa/xquad-r/en.json\n")
        return t / "data"

    return [
        ("merge --overwrite onto a folder polyret did not make",
         lambda t: ["merge", "--base", tiny, "--tuned", tiny, "--weight", "0.5", "--out", foreign(t), "--overwrite"],
         "not written by polyret", 2, ["mine"]),
        ("merge --out equal to --tuned, --overwrite",
         lambda t: ["merge", "--base", tiny, "--tuned", t / "tuned", "--weight", "0.5", "--out", t / "tuned", "--overwrite"],
         "input", 2, ["tuned"]),
        ("train --overwrite onto a foreign folder with a bad model path",
         lambda t: ["train", "--out", foreign(t), "--overwrite", "--model", t / "no-model", "--steps", "2"],
         "not written by polyret", 2, ["mine"]),
        ("train with a bad model path leaves no half-made run dir",
         lambda t: ["train", "--out", t / "run", "--model", t / "no-model", "--steps", "2"],
         "no-model", 2, []),
        ("encode --out emb with an existing emb.npy",
         lambda t: (t / "emb.npy").write_bytes(b"keep") and None or
         ["encode", "--model", tiny, "--input", t / "in.txt", "--out", t / "emb"], "emb.npy exists", 2, ["emb.npy"]),
        ("encode a Latin-1 text file",
         lambda t: (t / "l1.txt").write_bytes("caf\xe9\n".encode("latin-1")) and None or
         ["encode", "--model", tiny, "--input", t / "l1.txt", "--out", t / "o.npy"], "byte 3", 2, []),
        ("encode --batch-size 0", lambda t: ["encode", "--model", tiny, "--input", t / "in.txt", "--out", t / "o.npy",
                                             "--batch-size", "0"], "--batch-size", 2, []),
        ("encode: error text with [brackets] in the path",
         lambda t: ["encode", "--input", t / "runs [old]" / "x.txt", "--out", t / "o"], "runs [old]/x.txt", 2, []),
        ("data status: checksum mismatch", lambda t: ["data", "status", "--data", sums(t)], "", 1, []),
        ("data status --json: checksum mismatch", lambda t: ["data", "status", "--json", "--data", sums(t)], "", 1, []),
        ("eval lareqa: answer_start outside the context",
         lambda t: ["eval", "lareqa", "--model", tiny, "--no-cache", "--data",
                    lareqa_file(t / "lq", bad_par(qas=[{"id": "q1", "question": "W?", "answers": [{"text": "x", "answer_start": 99}]}])),
                    "--out", t / "o", "--no-progress"], "q1", 2, []),
        ("eval lareqa: every paragraphs list empty",
         lambda t: ["eval", "lareqa", "--model", tiny, "--no-cache", "--data", lareqa_file(t / "lq", None), "--out", t / "o",
                    "--no-progress"], "no questions", 2, []),
        ("eval beir: empty query text", lambda t: ["eval", "beir", "--model", tiny, "--data", beir(t, ""), "--out", t / "o",
                                                   "--no-progress"], "empty text", 2, []),
        ("eval beir: blank query text", lambda t: ["eval", "beir", "--model", tiny, "--data", beir(t, "   "), "--out", t / "o",
                                                   "--no-progress"], "empty text", 2, []),
        ("train: steps: yes in the YAML",
         lambda t: (t / "c.yaml").write_text("steps: yes\n") and None or
         ["train", "--config", t / "c.yaml", "--out", t / "run", "--model", tiny], "steps", 2, []),
        ("build-pairs: empty JSONL",
         lambda t: (t / "e.jsonl").write_text("") and None or ["data", "build-pairs", "--from", t / "e.jsonl", "--out", t / "p.jsonl"],
         "no groups", 2, []),
        ("build-pairs: Latin-1 JSONL",
         lambda t: (t / "l.jsonl").write_bytes('{"id": "caf\xe9"}\n'.encode("latin-1")) and None or
         ["data", "build-pairs", "--from", t / "l.jsonl", "--out", t / "p.jsonl"], "byte", 2, []),
        ("build-pairs: LAReQA sentence_breaks are strings",
         lambda t: ["data", "build-pairs", "--from", lareqa_file(t / "lq", bad_par(sentence_breaks=[["0", "8"], ["9", "20"]])) / "en.json",
                    "--out", t / "p.jsonl"], "sentence_breaks[0]", 2, []),
        ("build-pairs: LAReQA sentences are numbers",
         lambda t: ["data", "build-pairs", "--from", lareqa_file(t / "lq", bad_par(sentences=[1, 2])) / "en.json",
                    "--out", t / "p.jsonl"], "sentences[0]", 2, []),
        ("build-pairs: LAReQA answer_start outside the context (paragraph unit)",
         lambda t: ["data", "build-pairs", "--unit", "paragraph", "--from",
                    lareqa_file(t / "lq", bad_par(qas=[{"id": "q1", "question": "W?", "answers": [{"text": "x", "answer_start": 99}]}])) / "en.json",
                    "--out", t / "p.jsonl"], "answer_start 99", 2, []),
        ("build-pairs --out onto its own input, --overwrite",
         lambda t: (t / "g.jsonl").write_text(json.dumps({"id": "g", "queries": {"de": "q"}, "positives": {"de": "p"}}) + "\n") and None or
         ["data", "build-pairs", "--from", t / "g.jsonl", "--out", t / "g.jsonl", "--overwrite"], "input", 2, ["g.jsonl"]),
        ("export-beir --out inside the LAReQA folder",
         lambda t: ["data", "export-beir", "--data", lareqa_file(t / "lq", bad_par()), "--setting", "multi", "--out", t / "lq" / "beir"],
         "input", 2, ["lq"]),
        ("eval lareqa --overwrite onto a foreign folder",
         lambda t: ["eval", "lareqa", "--model", tiny, "--no-cache", "--data", lareqa_file(t / "lq", bad_par()), "--out", foreign(t),
                    "--overwrite", "--no-progress"], "not written by polyret", 2, ["mine"]),
        ("eval xnli --out onto a foreign non-empty folder",
         lambda t: ["eval", "xnli", "--model", tiny, "--data", t / "nope", "--out", foreign(t)], "", 2, ["mine"]),
        ("model prepare --out an existing file",
         lambda t: (t / "f").write_text("x") and None or ["model", "prepare", "--out", t / "f"], "not a folder", 2, ["f"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=args.src, HF_HUB_OFFLINE="1", COLUMNS="300")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        tiny = root / "tiny"
        subprocess.run([sys.executable, "-c", f"from polyret.model import build_tiny_model as b; b({str(tiny)!r})"],
                       env=env, check=True, capture_output=True)
        for i, (name, setup, words, code, protected) in enumerate(cases(str(tiny))):
            t = root / f"case{i}"
            t.mkdir()
            env["POLYRET_CACHE"] = str(t / "cache")
            (t / "in.txt").write_text("a\nb\n")
            import shutil

            shutil.copytree(tiny, t / "tuned")
            argv = [str(a) for a in setup(t)]
            before = {p: tree(t / p) if (t / p).is_dir() else (t / p).read_bytes() for p in protected}
            r = subprocess.run([POLYRET, *argv], cwd=t, env=env, capture_output=True, text=True, timeout=600)
            after = {p: (tree(t / p) if (t / p).is_dir() else (t / p).read_bytes()) if (t / p).exists() else None
                     for p in protected}
            err = " ".join(r.stderr.split())
            if after != before:
                verdict = "file lost"
            elif "Traceback" in r.stderr:
                verdict = "traceback"
            elif r.returncode == 0 and code != 0:
                verdict = "wrong exit 0"
            elif r.returncode == code and (not words or words in err):
                verdict = "clear error" if code else "handled"
            else:
                verdict = "confusing"
            if name.startswith("train with a bad model") and (t / "run").exists():
                verdict = "confusing" if verdict == "clear error" else verdict  # a half-made run dir blocks a re-run
            rows.append({"case": name, "exit": r.returncode, "verdict": verdict, "message": err[-200:]})
    tally = Counter(r["verdict"] for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "tally": tally}, indent=2))
        return
    for r in rows:
        print(f"{r['verdict']:>13}  exit {r['exit']:>3}  {r['case']}")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in tally.most_common()) + f"  ({len(rows)} cases)")


if __name__ == "__main__":
    main()
