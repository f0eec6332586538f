"""MIRACL readers: topics (`qid<TAB>query`), TREC qrels (`qid Q0 docid rel`) and the passage corpus.

The topics/qrels are the v1.0 files from castorini/anserini-tools (Apache-2.0), present in the shared
data directory under `miracl/topics/` and `miracl/qrels/`. The corpus (106M passages in 18 languages)
is not: the user supplies the per-language JSONL from the `miracl/miracl-corpus` data set on the
Hugging Face hub (one `{"docid", "title", "text"}` object per line, `.jsonl` or `.jsonl.gz`, or
several shards concatenated).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from polyret.data.beir import BeirDoc, DuplicateIds, iter_json_lines, open_text
from polyret.errors import PolyretError
from polyret.trec import read_trec_qrels  # noqa: F401  (TREC qrels: the one reader in polyret.trec)
from polyret.paths import find_data_dir

MIRACL_LANGS = (
    "ar",
    "bn",
    "de",
    "en",
    "es",
    "fa",
    "fi",
    "fr",
    "hi",
    "id",
    "ja",
    "ko",
    "ru",
    "sw",
    "te",
    "th",
    "yo",
    "zh",
)
CORPUS_SOURCE = (
    "the MIRACL passage corpus for that language: the JSONL files (`docid`, `title`, `text` per line) under "
    "miracl-corpus-v1.0-{lang}/ in the `miracl/miracl-corpus` data set on the Hugging Face hub "
    "(https://huggingface.co/datasets/miracl/miracl-corpus), passed with --corpus FILE.jsonl[.gz] or --corpus DIR (its shards)"
)


def corpus_needed_message(lang: str) -> str:
    return f"MIRACL evaluation needs {CORPUS_SOURCE.format(lang=lang)}; polyret does not download it"


def check_lang(lang: str) -> str:
    if lang not in MIRACL_LANGS:
        raise PolyretError(f"unknown MIRACL language {lang!r}; MIRACL v1.0 has {', '.join(MIRACL_LANGS)}")
    return lang


def default_files(lang: str, split: str = "dev") -> tuple[Path, Path]:
    """(topics, qrels) for `lang`/`split` in the data directory, or a PolyretError naming what is missing."""
    check_lang(lang)
    root = find_data_dir(required=True)
    topics = root / "miracl" / "topics" / f"topics.miracl-v1.0-{lang}-{split}.tsv"
    qrels = root / "miracl" / "qrels" / f"qrels.miracl-v1.0-{lang}-{split}.tsv"
    for p in (topics, qrels):
        if not p.is_file():
            raise PolyretError(f"{p} does not exist (MIRACL {lang}/{split} topics and qrels; pass --topics/--qrels)")
    return topics, qrels


def read_topics(path: Path) -> dict[str, str]:
    """`qid<TAB>query` per line -> {qid: query}, file order kept."""
    path = Path(path)
    out: dict[str, str] = {}
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise PolyretError(
                    f"{path} line {lineno} has {len(parts)} tab-separated columns, expected 2 (qid, query)"
                )
            qid, query = parts[0].strip(), parts[1].strip()
            if not qid or not query:
                raise PolyretError(f"{path} line {lineno} has an empty query id or query text")
            if qid in out:
                raise PolyretError(f"{path} line {lineno} repeats query id {qid!r}")
            out[qid] = query
    if not out:
        raise PolyretError(f"{path} holds no topics")
    return out


def corpus_files(path: Path) -> list[Path]:
    """The corpus shards: `path` itself, or the `*.jsonl[.gz]` files of a directory such as
    `miracl-corpus-v1.0-sw/` (docs-0.jsonl.gz, docs-1.jsonl.gz, ...), in natural order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz"))]
        if not files:
            raise PolyretError(f"MIRACL corpus directory {path} holds no .jsonl or .jsonl.gz files")

        def natural(p: Path):
            return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

        return sorted(files, key=natural)
    raise PolyretError(f"MIRACL corpus {path} does not exist; expected {CORPUS_SOURCE.format(lang='LL')}")


def iter_corpus(path: Path) -> Iterator[BeirDoc]:
    """Stream a MIRACL corpus (a JSONL(.gz) file or a directory of shards) as BeirDoc records."""
    seen = DuplicateIds("docid")
    for shard in corpus_files(path):
        yield from _iter_shard(shard, seen)
    seen.finish()


def _iter_shard(path: Path, seen: DuplicateIds) -> Iterator[BeirDoc]:
    for lineno, obj in iter_json_lines(path):
        for key in ("docid", "text"):
            if not isinstance(obj.get(key), str):
                raise PolyretError(
                    f"{path} line {lineno} has no string {key!r} field (MIRACL corpus lines are "
                    '{"docid": ..., "title": ..., "text": ...})'
                )
        docid = obj["docid"]
        seen.add(docid, path, lineno)
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise PolyretError(f"{path} line {lineno}: field 'title' must be a string")
        yield BeirDoc(id=docid, text=obj["text"], title=title)
