"""Build parallel training groups from QA files (`polyret data build-pairs`).

Inputs (files, or directories whose ``*.json`` / ``*.jsonl`` files are read, sorted by name):

- MLQA-style ``*context-XX-question-YY.json`` (SQuAD JSON; question in YY, context in XX);
- LAReQA-style ``LL.json`` (XQuAD-R / MLQA-R: SQuAD JSON with ``sentence_breaks`` / ``sentences``;
  the sentence unit then uses these gold sentences, not a splitter);
- TyDi-GoldP-style ``tydiqa.goldp.LL.<split>.json`` (monolingual SQuAD JSON; one-language groups);
- existing group JSONL (``*.jsonl``, see `polyret.data.groups`), passed through unchanged.

SQuAD records are joined on the question id within a training set (TyDi records never are: each is
its own one-language group, id ``LL:ID`` plus ``#k`` for repeated ids); ``source``: the name of the
file's directory, or ``source=`` to override. A group holds the id's question in every language it
appears in and its positive passage in every context language. Units:

- ``sentence`` (default): the sentence of the context that holds ``answers[0].answer_start`` (all
  sentences the answer spans, when it crosses a boundary) -- the evaluation's candidate unit;
- ``paragraph``: the whole context.

``same-paragraph`` negatives (sentence unit only): the other sentences of the answer's paragraph.

A record without an answer text has no known answer sentence (XTREME's copies of MLQA *test* and
TyDi *dev* carry empty answers). With the sentence unit that is an error naming the file and record,
unless ``answerless="overlap"`` asks for the approximate locator (`locate_sentence`), whose agreement
with gold answer sentences `locator_accuracy` measures; ``unit="paragraph"`` needs no answers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from polyret.data.groups import ParallelGroup, read_groups_jsonl
from polyret.data.lareqa import check_answer_start, check_lareqa_paragraph
from polyret.data.sentences import DEFAULT_SPLITTER, sentence_at, split_spans
from polyret.errors import PolyretError
from polyret.io import read_json
from polyret.progress import track

UNITS = ("sentence", "paragraph")
NEGATIVES = ("none", "same-paragraph")
ANSWERLESS = ("error", "overlap")

_MLQA_RE = re.compile(r"context-([a-z]{2,3})-question-([a-z]{2,3})\.json$")
_TYDI_RE = re.compile(r"^tydiqa\.goldp\.([a-z]{2,3})\.[A-Za-z0-9_-]+\.json$")
_LAREQA_RE = re.compile(r"^([a-z]{2,3})\.json$")


@dataclass
class BuildReport:
    files: list[str] = field(default_factory=list)
    records: int = 0
    groups: int = 0
    counts: Counter = field(default_factory=Counter)  # named event counts (see `summary`)
    query_langs: Counter = field(default_factory=Counter)  # groups with a query in each language
    passage_langs: Counter = field(default_factory=Counter)  # groups with a positive in each language
    sources: Counter = field(default_factory=Counter)

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "records": self.records,
            "groups": self.groups,
            "sources": dict(self.sources),
            "query_langs": dict(sorted(self.query_langs.items())),
            "passage_langs": dict(sorted(self.passage_langs.items())),
            "counts": dict(sorted(self.counts.items())),
        }


def file_kind(path: Path) -> tuple[str, str | None, str | None]:
    """(kind, context language, question language) from a file name; kind in mlqa/tydi/lareqa/jsonl."""
    name = path.name
    if name.endswith(".jsonl"):
        return "jsonl", None, None
    if m := _MLQA_RE.search(name):
        return "mlqa", m.group(1), m.group(2)
    if m := _TYDI_RE.match(name):
        return "tydi", m.group(1), m.group(1)
    if m := _LAREQA_RE.match(name):
        return "lareqa", m.group(1), m.group(1)
    raise PolyretError(
        f"{path}: cannot tell its format or language from the name; expected *context-XX-question-YY.json "
        "(MLQA), LL.json (LAReQA), tydiqa.goldp.LL.SPLIT.json (TyDi GoldP) or *.jsonl (groups)"
    )


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the *.json / *.jsonl files of named directories (sorted)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix in (".json", ".jsonl"))
            if not found:
                raise PolyretError(f"{p}: directory holds no .json or .jsonl files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise PolyretError(f"{p}: no such file or directory")
    if not files:
        raise PolyretError("no input files given")
    return files


def _load_squad(path: Path) -> list:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise PolyretError(f"{path}: not SQuAD JSON (no top-level 'data' list)")
    return data["data"]


class _Paragraph:
    """A context with its sentence spans computed once (shared by all its questions)."""

    def __init__(self, context: str, lang: str, splitter: str, gold: dict | None):
        self.context = context
        self._lang, self._splitter, self._gold = lang, splitter, gold
        self._spans: list[tuple[int, int]] | None = None
        self._texts: list[str] | None = None

    def sentences(self) -> tuple[list[tuple[int, int]], list[str]]:
        if self._spans is None:
            if self._gold is not None:
                self._spans, self._texts = self._gold["spans"], self._gold["texts"]
            else:
                self._spans = split_spans(self.context, self._lang, self._splitter)
                self._texts = [self.context[a:b] for a, b in self._spans]
        return self._spans, self._texts  # type: ignore[return-value]


def _gold_sentences(par: dict, where: str) -> dict | None:
    if par.get("sentence_breaks") is None:
        return None

    _, gold_spans, sents, _ = check_lareqa_paragraph(par, where)
    spans, texts = [], []
    for (a, b), text in zip(gold_spans, sents):
        # Gold strings may differ from the context slice (two Turkish XQuAD-R sentences do): the
        # evaluation's candidates are the `sentences` strings, so use those.
        if text.strip():
            spans.append((a, b))
            texts.append(text.strip())
    return {"spans": spans, "texts": texts}


@dataclass
class _Record:
    where: str
    source: str
    qid: str
    qlang: str
    question: str
    clang: str
    paragraph: _Paragraph
    answer_text: str | None
    answer_start: int | None


def build_groups(
    inputs: Sequence[str | Path],
    unit: str = "sentence",
    negatives: str = "none",
    splitter: str = DEFAULT_SPLITTER,
    source: str | None = None,
    answerless: str = "error",
    progress: bool = False,
) -> tuple[list[ParallelGroup], BuildReport]:
    """Parallel groups from QA files / directories / group JSONL, plus a report of what happened.

    `answerless` (sentence unit, records without an answer text): ``error`` (default) or ``overlap``
    -- take the context sentence with the largest IDF-weighted character n-gram overlap with the
    group's question in the context's language (see `locate_sentence`; its agreement with the gold
    answer sentence is measured by `locator_accuracy`). A context whose group has no question in
    its language is then left out (counted as ``positives_unlocated``).
    """
    _check_build_options(unit, negatives, answerless)
    files = expand_inputs(inputs)
    report = BuildReport(files=[str(f) for f in files])
    # Pass 1: read every record (questions of an id may sit in other files than its contexts).
    records, passthrough = _read_inputs(files, source, splitter, report.counts, progress)
    report.records = len(records)
    # Pass 2: questions, then positives (the overlap locator needs the id's same-language question).
    groups = _groups_with_questions(records, report.counts)
    _place_positives(records, groups, unit, negatives, answerless, report.counts)
    built = [g for g in groups.values() if g.positives]
    if len(built) < len(groups):
        report.counts["groups_without_positive"] += len(groups) - len(built)
    out = built + passthrough
    _count_groups(out, report)
    if not out:
        raise PolyretError(
            f"no parallel groups could be built from {', '.join(map(str, files))} "
            f"({report.records} QA records, {report.counts['jsonl_groups']} JSONL groups); nothing to write"
        )
    return out, report


def _check_build_options(unit: str, negatives: str, answerless: str) -> None:
    if unit not in UNITS:
        raise PolyretError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    if negatives not in NEGATIVES:
        raise PolyretError(f"unknown negatives {negatives!r}; choose one of {', '.join(NEGATIVES)}")
    if answerless not in ANSWERLESS:
        raise PolyretError(f"unknown answerless policy {answerless!r}; choose one of {', '.join(ANSWERLESS)}")
    if negatives == "same-paragraph" and unit != "sentence":
        raise PolyretError(
            "same-paragraph negatives need --unit sentence (a paragraph has no other sentences of itself)"
        )


def _read_inputs(
    files: list[Path], source: str | None, splitter: str, counts: Counter, progress: bool
) -> tuple[list[_Record], list[ParallelGroup]]:
    """(SQuAD-style records of every QA file, groups of the group-JSONL files passed through)."""
    kinds = [(f, *file_kind(f)) for f in files]
    if progress:
        kinds = track(kinds, "reading QA files", show=True)
    records: list[_Record] = []
    passthrough: list[ParallelGroup] = []
    for path, kind, clang, qlang in kinds:
        if kind == "jsonl":
            passthrough.extend(_read_group_jsonl(path, source, counts))
        else:
            records.extend(_read_squad_records(path, kind, clang, qlang, source, splitter, counts))
    return records, passthrough


def _read_group_jsonl(path: Path, source: str | None, counts: Counter) -> list[ParallelGroup]:
    """Existing groups, unchanged but for `source` when one is given."""
    got = read_groups_jsonl(path)
    if source:
        for g in got:
            g.source = source
    counts["jsonl_groups"] += len(got)
    return got


def _groups_with_questions(records: list[_Record], counts: Counter) -> dict[tuple[str, str], ParallelGroup]:
    """One group per (training set, question id), holding the id's question in every language."""
    groups: dict[tuple[str, str], ParallelGroup] = {}
    for r in records:
        g = groups.get((r.source, r.qid))
        if g is None:
            g = groups[(r.source, r.qid)] = ParallelGroup(id=r.qid, queries={}, positives={}, source=r.source)
        _put(g.queries, r.qlang, r.question, counts, "conflicting_questions")
    return groups


def _place_positives(
    records: list[_Record],
    groups: dict[tuple[str, str], ParallelGroup],
    unit: str,
    negatives: str,
    answerless: str,
    counts: Counter,
) -> None:
    """Each record's positive (and same-paragraph negatives) into its group, once per context language."""
    done: set[tuple[str, str, str]] = set()
    for r in records:
        key = (r.source, r.qid, r.clang)
        g = groups[(r.source, r.qid)]
        if unit == "sentence" and not r.answer_text:
            if key in done:
                continue  # an answer-less duplicate of a context already placed
            done.add(key)
            located = _locate_answerless(r, g, answerless, counts)
            if located is None:
                continue
            first, last = located
        else:
            done.add(key)
            first, last = _answer_sentences(r, unit, counts)
        positive, negs = _unit_text(r.paragraph, first, last, unit, negatives, counts)
        if _put(g.positives, r.clang, positive, counts, "conflicting_positives") and negs:
            g.negatives[r.clang] = negs


def _locate_answerless(r: _Record, g: ParallelGroup, answerless: str, counts: Counter) -> tuple[int, int] | None:
    """The answer sentence of a record without an answer text (the `answerless` rule); None: left out."""
    if answerless == "error":
        raise PolyretError(
            f"{r.where}: no answer text, so the answer sentence is unknown (XTREME's copies of MLQA test "
            "and TyDi dev carry empty answers); use --unit paragraph or --answerless overlap"
        )
    question = g.queries.get(r.clang)
    if question is None:
        counts["positives_unlocated"] += 1
        return None
    _, texts = r.paragraph.sentences()
    if not texts:
        raise PolyretError(f"{r.where}: empty context")
    counts["positives_located_by_overlap"] += 1
    i = locate_sentence(question, texts, r.clang)
    return i, i


def _count_groups(out: list[ParallelGroup], report: BuildReport) -> None:
    """Languages and sources into the report; a (source, id) from two inputs is an error."""
    seen: set[tuple[str, str]] = set()
    for g in out:
        if (g.source, g.id) in seen:
            raise PolyretError(
                f"group id {g.id!r} of training set {g.source!r} comes from two inputs; use distinct sources"
            )
        seen.add((g.source, g.id))
        report.query_langs.update(list(g.queries))
        report.passage_langs.update(list(g.positives))
        report.sources[g.source] += 1
        if len(g.languages) == 1:
            report.counts["single_language_groups"] += 1
    report.groups = len(out)


def _read_squad_records(
    path: Path, kind: str, clang: str, qlang: str, source: str | None, splitter: str, counts: Counter
) -> list[_Record]:
    src = source or path.resolve().parent.name
    seen_in_file: Counter = Counter()
    out: list[_Record] = []
    for ai, article in enumerate(_load_squad(path)):
        pars = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(pars, list):
            raise PolyretError(f"{path}: data[{ai}] has no 'paragraphs' list")
        for pi, par in enumerate(pars):
            where_p = f"{path}: data[{ai}].paragraphs[{pi}]"
            if (
                not isinstance(par, dict)
                or not isinstance(par.get("context"), str)
                or not isinstance(par.get("qas"), list)
            ):
                raise PolyretError(f"{where_p}: needs a 'context' string and a 'qas' list")
            if not par["context"].strip():
                raise PolyretError(f"{where_p}: empty context")
            gold = _gold_sentences(par, where_p) if kind == "lareqa" else None
            paragraph = _Paragraph(par["context"], clang, splitter, gold)
            for qi, qa in enumerate(par["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                where = f"{where_p}.qas[{qi}]" + (f" (id {qid})" if qid is not None else "")
                if qid is None or not isinstance(qa.get("question"), str) or not qa["question"].strip():
                    raise PolyretError(f"{where}: a record needs an 'id' and a non-empty 'question'")
                qid = str(qid)
                if kind == "tydi":
                    # TyDi is not parallel, and its train-file ids repeat ("0", "1", ... per passage):
                    # never join its records; keep ids unique by language and occurrence.
                    seen_in_file[qid] += 1
                    k = seen_in_file[qid]
                    qid = f"{clang}:{qid}" + (f"#{k}" if k > 1 else "")
                    counts["tydi_ids_renamed"] += k > 1
                answers = qa.get("answers")
                answer = answers[0] if isinstance(answers, list) and answers and isinstance(answers[0], dict) else {}
                text, start = answer.get("text"), answer.get("answer_start")
                if text and (not isinstance(start, int) or isinstance(start, bool)):
                    raise PolyretError(f"{where}: 'answer_start' must be an integer")
                if text:
                    check_answer_start(start, par["context"], where)
                out.append(
                    _Record(
                        where,
                        src,
                        qid,
                        qlang,
                        qa["question"].strip(),
                        clang,
                        paragraph,
                        text or None,
                        start if text else None,
                    )
                )
    return out


def _put(mapping: dict[str, str], lang: str, text: str, counts: Counter, conflict_key: str) -> bool:
    """Store text for lang; the first one wins if files disagree (counted). True if stored now."""
    old = mapping.get(lang)
    if old is None:
        mapping[lang] = text
        return True
    if old != text:
        counts[conflict_key] += 1
    return False


def _answer_sentences(r: _Record, unit: str, counts: Counter) -> tuple[int, int]:
    """(first, last) sentence index holding the answer; (-1, -1) for the paragraph unit."""
    if unit == "paragraph":
        return -1, -1
    ctx, text, start = r.paragraph.context, r.answer_text or "", r.answer_start or 0
    if not 0 <= start < len(ctx):
        raise PolyretError(f"{r.where}: answer_start {start} is outside its context ({len(ctx)} characters)")
    if ctx[start : start + len(text)] != text:
        counts["answer_text_mismatch"] += 1  # kept: answer_start is what locates the sentence
    spans, _ = r.paragraph.sentences()
    first = sentence_at(spans, start)
    last = sentence_at(spans, start + len(text) - 1)
    if first < 0:
        raise PolyretError(f"{r.where}: answer_start {start} lies after the last sentence of the context")
    last = first if last < first else last
    if last > first:
        counts["answers_across_sentences"] += 1
    return first, last


def _unit_text(
    paragraph: _Paragraph, first: int, last: int, unit: str, negatives: str, counts: Counter
) -> tuple[str, list[str]]:
    if unit == "paragraph":
        return paragraph.context.strip(), []
    _, texts = paragraph.sentences()
    positive = " ".join(texts[first : last + 1])
    negs: list[str] = []
    if negatives == "same-paragraph":
        negs = [t for i, t in enumerate(texts) if not first <= i <= last and t != positive]
        if not negs:
            counts["one_sentence_paragraphs"] += 1
    return positive, negs


# ------------------------------------------------------------------ answer-less sentence locator
# Character n-grams work for every script without a tokenizer; scripts written without spaces
# carry a word in one or two characters, so they use shorter grams.
_NGRAM = {"zh": 1, "ja": 1, "th": 2}


def _grams(text: str, n: int) -> Counter:
    text = text.lower()
    return Counter(g for i in range(len(text) - n + 1) if not (g := text[i : i + n]).isspace())


def locate_sentence(question: str, sentences: Sequence[str], lang: str) -> int:
    """Index of the sentence sharing the most IDF-weighted character n-grams with `question`
    (IDF over the paragraph's sentences; the first one wins ties)."""
    n = _NGRAM.get(lang, 4)
    sent_grams = [_grams(s, n) for s in sentences]
    df: Counter = Counter()
    for sg in sent_grams:
        df.update(sg.keys())
    q = _grams(question, n)
    total = len(sentences) + 1
    best, best_score = 0, -1.0
    for i, sg in enumerate(sent_grams):
        score = sum(min(c, sg[g]) * math.log(total / (df[g] + 0.5)) for g, c in q.items() if g in sg)
        if score > best_score:
            best, best_score = i, score
    return best


def locator_accuracy(path: str | Path, lang: str | None = None) -> tuple[int, float]:
    """(questions, share where `locate_sentence` picks the gold answer sentence) on an XQuAD-R-style
    file, using the question in the file's own language and its gold sentences."""
    path = Path(path)
    lang = lang or path.stem
    total = hits = 0
    for ai, article in enumerate(_load_squad(path)):
        for pi, par in enumerate(article.get("paragraphs", [])):
            gold = _gold_sentences(par, f"{path}: data[{ai}].paragraphs[{pi}]")
            if gold is None:
                raise PolyretError(f"{path}: data[{ai}].paragraphs[{pi}] has no 'sentence_breaks'")
            for qa in par["qas"]:
                start = qa["answers"][0]["answer_start"]
                total += 1
                hits += locate_sentence(qa["question"], gold["texts"], lang) == sentence_at(gold["spans"], start)
    return total, (hits / total if total else 0.0)


__all__ = [
    "ANSWERLESS",
    "BuildReport",
    "NEGATIVES",
    "UNITS",
    "build_groups",
    "expand_inputs",
    "file_kind",
    "locate_sentence",
    "locator_accuracy",
]
