"""BEIR layout reader and writer.

A BEIR data set is a directory with

- `corpus.jsonl`: one `{"_id", "title", "text"}` object per line (polyret also writes/keeps `lang`),
- `queries.jsonl`: one `{"_id", "text"}` object per line (plus `lang` where known),
- `qrels/<split>.tsv`: `query-id<TAB>corpus-id<TAB>score` with a header row.

`corpus.jsonl.gz` / `queries.jsonl.gz` are read too. The corpus is only ever *streamed*
(`iter_corpus`): BEIR/MIRACL corpora can hold millions of passages, so nothing here loads it whole.
Every malformed record raises one `PolyretError` naming the file and line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from polyret.data.lareqa import load_lareqa
from polyret.errors import PolyretError
from polyret.io import open_text as _open_text, output_dir

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class BeirDoc:
    """One corpus passage. `lang` is None when the source does not say."""

    id: str
    text: str
    title: str = ""
    lang: str | None = None

    def to_json(self) -> dict:
        out = {"_id": self.id, "title": self.title, "text": self.text}
        if self.lang is not None:
            out["lang"] = self.lang
        return out


@dataclass(frozen=True)
class BeirQuery:
    id: str
    text: str
    lang: str | None = None

    def to_json(self) -> dict:
        out = {"_id": self.id, "text": self.text}
        if self.lang is not None:
            out["lang"] = self.lang
        return out


Qrels = dict[str, dict[str, int]]
"""query id -> {doc id -> graded relevance}; 0 means judged not relevant."""


def passage_text(title: str, text: str) -> str:
    """The string an encoder sees for a passage: `title text` (BEIR/pyserini convention), or text alone."""
    title = (title or "").strip()
    return f"{title} {text}" if title else text


def open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, transparently gunzipping `*.gz` (bytes that are not UTF-8: an error
    naming the file, line and byte offset; see polyret.io.open_text)."""
    return _open_text(path)


def find_file(directory: Path, name: str) -> Path:
    """`directory/name` or `directory/name.gz`, else a PolyretError naming both."""
    for cand in (directory / name, directory / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise PolyretError(f"{directory} holds neither {name} nor {name}.gz (not a BEIR data set directory?)")


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    with open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PolyretError(f"{path} line {lineno} is not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise PolyretError(f"{path} line {lineno} is not a JSON object")
                yield lineno, obj
        except (gzip.BadGzipFile, EOFError, UnicodeDecodeError, OSError) as e:
            raise PolyretError(f"{path} cannot be read ({type(e).__name__}: {e})") from None


def _str_field(obj: dict, key: str, path: Path, lineno: int, *, required: bool = True) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise PolyretError(f"{path} line {lineno} has no {key!r} field")
        return ""
    val = obj[key]
    if isinstance(val, (int, float)) and not isinstance(val, bool) and key == "_id":
        return str(val)  # some BEIR sets store numeric ids
    if not isinstance(val, str):
        raise PolyretError(f"{path} line {lineno}: field {key!r} must be a string, got {type(val).__name__}")
    return val


class DuplicateIds:
    """Finds repeated ids in a stream of tens of millions with ~8 bytes per id (a Python set of the
    ids would take gigabytes): 64-bit hashes are buffered and checked against a sorted array of all
    earlier ones every `batch` ids and at `finish()`, so an error arrives at most `batch` records late.
    A 64-bit hash collision (odds ~1e-5 at 30M ids) would be reported as a repeat."""

    def __init__(self, what: str, batch: int = 1_000_000):
        self.what, self.batch = what, batch
        self.sorted = np.zeros(0, dtype=np.uint64)
        self.pending: list[tuple[int, str, Path, int]] = []  # (hash, id, file, line)

    @staticmethod
    def _hash(doc_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")

    def add(self, doc_id: str, path: Path, lineno: int) -> None:
        self.pending.append((self._hash(doc_id), doc_id, path, lineno))
        if len(self.pending) >= self.batch:
            self.finish()

    def finish(self) -> None:
        if not self.pending:
            return
        hashes = np.fromiter((h for h, *_ in self.pending), dtype=np.uint64, count=len(self.pending))
        pos = np.searchsorted(self.sorted, hashes)
        in_old = (
            (pos < len(self.sorted)) & (self.sorted[np.minimum(pos, len(self.sorted) - 1)] == hashes)
            if len(self.sorted)
            else np.zeros(len(hashes), bool)
        )
        _, first = np.unique(hashes, return_index=True)
        repeat_within = np.ones(len(hashes), bool)
        repeat_within[first] = False
        bad = np.flatnonzero(in_old | repeat_within)
        if len(bad):
            _, doc_id, path, lineno = self.pending[int(bad[0])]
            raise PolyretError(f"{path} line {lineno} repeats {self.what} {doc_id!r}")
        self.sorted = np.union1d(self.sorted, hashes)
        self.pending = []


def iter_corpus(path: Path) -> Iterator[BeirDoc]:
    """Stream `corpus.jsonl[.gz]`; duplicate ids are an error (they would make qrels ambiguous)."""
    path = Path(path)
    seen = DuplicateIds("document id")
    for lineno, obj in iter_json_lines(path):
        doc_id = _str_field(obj, "_id", path, lineno)
        if not doc_id:
            raise PolyretError(f"{path} line {lineno} has an empty '_id'")
        seen.add(doc_id, path, lineno)
        lang = obj.get("lang")
        yield BeirDoc(
            id=doc_id,
            text=_str_field(obj, "text", path, lineno),
            title=_str_field(obj, "title", path, lineno, required=False),
            lang=lang if isinstance(lang, str) else None,
        )
    seen.finish()


def read_queries(path: Path) -> dict[str, BeirQuery]:
    """`queries.jsonl[.gz]` -> {query id: BeirQuery}, file order kept."""
    path = Path(path)
    out: dict[str, BeirQuery] = {}
    for lineno, obj in iter_json_lines(path):
        qid = _str_field(obj, "_id", path, lineno)
        if not qid.strip():
            raise PolyretError(f"{path} line {lineno} has an empty query id")
        if qid in out:
            raise PolyretError(f"{path} line {lineno} repeats query id {qid!r}")
        lang = obj.get("lang")
        text = _str_field(obj, "text", path, lineno)
        if not text.strip():  # an empty query would still be encoded (its prompt alone) and scored: refuse it
            raise PolyretError(f"{path} line {lineno}: query {qid!r} has empty text")
        out[qid] = BeirQuery(qid, text, lang if isinstance(lang, str) else None)
    return out


def read_qrels(path: Path) -> Qrels:
    """`qrels/<split>.tsv` (header row `query-id corpus-id score`) -> {qid: {docid: relevance}}."""
    path = Path(path)
    qrels: Qrels = {}
    with open_text(path) as f:
        header = f.readline()
        cols = tuple(c.strip() for c in header.rstrip("\r\n").split("\t"))
        if cols[:3] != QRELS_HEADER:
            raise PolyretError(
                f"{path} line 1 must be the header 'query-id<TAB>corpus-id<TAB>score', got {header.strip()!r}"
            )
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise PolyretError(f"{path} line {lineno} has {len(parts)} tab-separated columns, expected 3")
            qid, docid, score = parts[0].strip(), parts[1].strip(), parts[2].strip()
            try:
                rel = int(float(score))
            except ValueError:
                raise PolyretError(f"{path} line {lineno}: score {score!r} is not a number") from None
            qrels.setdefault(qid, {})[docid] = rel
    if not qrels:
        raise PolyretError(f"{path} holds no judgements")
    return qrels


@dataclass
class BeirSplit:
    """Queries and judgements of one split; the corpus stays on disk (`corpus_path`)."""

    root: Path
    split: str
    corpus_path: Path
    queries: dict[str, BeirQuery]
    qrels: Qrels


def load_beir(beir_dir: Path, split: str = "test") -> BeirSplit:
    """Queries + qrels of `split`, restricted to judged queries (as BEIR evaluates)."""
    root = Path(beir_dir)
    if not root.is_dir():
        raise PolyretError(f"BEIR directory {root} does not exist")
    corpus_path = find_file(root, "corpus.jsonl")
    queries = read_queries(find_file(root, "queries.jsonl"))
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise PolyretError(f"{qrels_path} does not exist (splits present: {', '.join(have) or 'none'})")
    qrels = read_qrels(qrels_path)
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise PolyretError(
            f"{qrels_path} judges {len(missing)} query id(s) absent from queries.jsonl, e.g. {missing[0]!r}"
        )
    return BeirSplit(root, split, corpus_path, {q: queries[q] for q in queries if q in qrels}, qrels)


def _write_unique_jsonl(path: Path, records, what: str) -> set[str]:
    """One JSON object per record (`.id`, `.to_json()`); an id written twice is an error. Returns the ids."""
    seen: set[str] = set()
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            if r.id in seen:
                raise PolyretError(f"{what} id {r.id!r} is written twice to {path}")
            seen.add(r.id)
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
    return seen


def write_beir(
    out_dir,
    corpus: Iterable[BeirDoc],
    queries: Iterable[BeirQuery],
    qrels: Qrels,
    *,
    split: str = "test",
    overwrite: bool = False,
) -> Path:
    """Write a BEIR directory under polyret's output-folder policy (polyret.io): a non-empty folder
    that is not an earlier BEIR export is refused; `overwrite` replaces an earlier export atomically."""
    target = output_dir(out_dir, "beir-data", overwrite=overwrite, legacy_files=("corpus.jsonl",))
    with target:
        out = target.path
        (out / "qrels").mkdir(parents=True, exist_ok=True)
        doc_ids = _write_unique_jsonl(out / "corpus.jsonl", corpus, "document")
        query_ids = _write_unique_jsonl(out / "queries.jsonl", queries, "query")
        with open(out / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("\t".join(QRELS_HEADER) + "\n")
            for qid, rels in qrels.items():
                if qid not in query_ids:
                    raise PolyretError(f"qrels for {split} judge query {qid!r} that is not in the queries written")
                for docid, rel in rels.items():
                    if docid not in doc_ids:
                        raise PolyretError(
                            f"qrels for query {qid!r} judge document {docid!r} that is not in the corpus written"
                        )
                    f.write(f"{qid}\t{docid}\t{int(rel)}\n")
    return target.final


# ---- LAReQA -> BEIR export ------------------------------------------------------------------

LAREQA_SETTINGS = "multi | mono:LL | cross:XX-YY"


def parse_lareqa_setting(setting: str) -> tuple[str, str | None, str | None]:
    """'multi' -> ('multi', None, None); 'mono:de' -> ('mono', 'de', 'de'); 'cross:de-en' -> ('cross', 'de', 'en')."""
    s = setting.strip().lower()
    if s == "multi":
        return "multi", None, None
    kind, _, arg = s.partition(":")
    if kind == "mono" and arg and "-" not in arg:
        return "mono", arg, arg
    if kind == "cross":
        parts = arg.split("-")
        if len(parts) == 2 and all(parts) and parts[0] != parts[1]:
            return "cross", parts[0], parts[1]
    raise PolyretError(f"--setting {setting!r} is not one of {LAREQA_SETTINGS} (e.g. mono:de, cross:de-en)")


def lareqa_to_beir(dataset, setting: str, candidate: str = "sentence") -> tuple[list[BeirDoc], list[BeirQuery], Qrels]:
    """A LAReQA setting as BEIR records (query id `qid.lang`, doc id `lang/paragraph/position`).

    - multi: every question against the pooled candidates of all loaded languages;
    - mono:LL: questions in LL against the candidates in LL;
    - cross:XX-YY: questions in XX that have an answer in YY, against the candidates in YY.
    Candidates keep the dataset's order (BEIR corpus order = polyret's tie-break order, as in LAReQA).
    """
    kind, src, tgt = parse_lareqa_setting(setting)
    for lang in (src, tgt):
        if lang is not None and lang not in dataset.languages:
            raise PolyretError(
                f"language {lang!r} of --setting {setting} is not loaded (have {', '.join(dataset.languages)})"
            )
    texts = dataset.candidate_texts(candidate)
    keep = [i for i, c in enumerate(dataset.candidates) if tgt is None or c.lang == tgt]
    docs = [BeirDoc(dataset.candidates[i].cid, texts[i], lang=dataset.candidates[i].lang) for i in keep]
    kept = set(keep)
    queries, qrels = [], {}
    for q, rel in zip(dataset.questions, dataset.relevant):
        if src is not None and q.lang != src:
            continue
        hits = [dataset.candidates[int(i)].cid for i in rel if int(i) in kept]
        if hits:
            queries.append(BeirQuery(q.key, q.text, lang=q.lang))
            qrels[q.key] = {cid: 1 for cid in hits}
    if not queries:
        raise PolyretError(f"LAReQA setting {setting}: no question has an answer among the candidates")
    return docs, queries, qrels


def export_lareqa_beir(
    data_dir,
    setting: str,
    out_dir,
    *,
    langs=None,
    candidate: str = "sentence",
    split: str = "test",
    overwrite: bool = False,
) -> dict:
    """Load a LAReQA folder (only the languages the setting needs) and write it as a BEIR directory."""
    # The output policy first (refuses --out inside the LAReQA folder, a foreign folder, ...), then the data.
    target = output_dir(out_dir, "beir-data", overwrite=overwrite, legacy_files=("corpus.jsonl",), inputs=[data_dir])
    kind, src, tgt = parse_lareqa_setting(setting)
    if kind != "multi":
        if langs:
            raise PolyretError("--langs only applies to --setting multi (mono/cross name their languages)")
        langs = list(dict.fromkeys([src, tgt]))
    dataset = load_lareqa(data_dir, langs=langs)
    docs, queries, qrels = lareqa_to_beir(dataset, setting, candidate)
    write_beir(target, docs, queries, qrels, split=split, overwrite=overwrite)
    return {
        "setting": setting,
        "languages": list(dataset.languages),
        "n_docs": len(docs),
        "n_queries": len(queries),
        "n_judgements": sum(map(len, qrels.values())),
        "out": str(out_dir),
        "split": split,
    }
