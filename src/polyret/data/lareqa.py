"""LAReQA retrieval data (XQuAD-R, MLQA-R): questions, a multilingual candidate pool, relevance.

File format (one `LL.json` per language): SQuAD v1.1 JSON whose paragraphs add `sentence_breaks`
(`[start, end)` character spans into `context`) and `sentences` (the sentence strings).

- Questions: (question id shared across languages, language, text).
- Candidates: every sentence of every paragraph of every language, in file order, grouped by
  language (the language order of `LareqaDataset.languages`).
- A question's relevant candidates: in every loaded language where its question id exists, the
  sentence whose span holds `answers[0].answer_start`. XQuAD-R: 11 per question (11-way parallel);
  MLQA-R: 2-4 (a question exists in only some languages and paragraphs are not parallel).

Quirks handled (counted in `LareqaDataset.load_warnings`, and reported once per file with
`warnings.warn`): an answer start inside no span uses the last span starting before it; a sentence
that differs from its context slice (two Turkish XQuAD-R sentences) uses the `sentences` string.
Structural problems (bad JSON, missing fields, duplicate question id within a language) raise one
`PolyretError` naming file, article and paragraph.

A dataset can also be built in memory: `LareqaDataset(...)` from lists, or
`LareqaDataset.from_groups(...)` from parallel groups (question per language + positive per language).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from polyret.errors import PolyretError
from polyret.io import read_json, write_text
from polyret.paths import find_data_dir

if TYPE_CHECKING:  # numpy is imported where arrays are built: a missing folder is refused without it
    import numpy as np

# Known LAReQA data sets: name -> language codes (used only to describe/resolve, never required).
KNOWN_DATASETS: dict[str, tuple[str, ...]] = {
    "xquad-r": ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
    "mlqa-r": ("ar", "de", "en", "es", "hi", "vi", "zh"),
}

WARN_NO_SPAN = "answer start inside no sentence span; used the last span starting before it"
WARN_SENTENCE_MISMATCH = "sentence differs from its context slice; used the `sentences` string"


@dataclass(frozen=True)
class LareqaQuestion:
    """One question in one language. `qid` is shared by the translations of the same question."""

    qid: str
    lang: str
    text: str

    @property
    def key(self) -> str:
        """Unique id of this (question, language), e.g. for TREC/BEIR files: `qid.lang`."""
        return f"{self.qid}.{self.lang}"


@dataclass(frozen=True)
class LareqaCandidate:
    """One answer-sentence candidate: a sentence, its paragraph, and its position in it."""

    lang: str
    sentence: str
    context: str
    paragraph_id: str
    position: int

    @property
    def cid(self) -> str:
        """Unique id of this candidate, e.g. for TREC/BEIR files: `lang/paragraph_id/position`."""
        return f"{self.lang}/{self.paragraph_id}/{self.position}"


@dataclass
class LareqaDataset:
    """Questions, candidates and, per question, the indices of its relevant candidates.

    `relevant[i]` lists indices into `candidates` for `questions[i]` (any number per language; at
    least one in all). `languages` fixes the order of languages in reports (default: sorted).
    """

    name: str
    questions: list[LareqaQuestion]
    candidates: list[LareqaCandidate]
    relevant: list[np.ndarray]
    languages: tuple[str, ...] = ()
    load_warnings: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import numpy as np

        self.questions = list(self.questions)
        self.candidates = list(self.candidates)
        if len(self.relevant) != len(self.questions):
            raise PolyretError(
                f"dataset {self.name}: {len(self.relevant)} relevance lists for {len(self.questions)} questions"
            )
        langs_seen = {q.lang for q in self.questions} | {c.lang for c in self.candidates}
        if not self.languages:
            self.languages = tuple(sorted(langs_seen))
        self.languages = tuple(self.languages)
        missing = langs_seen - set(self.languages)
        if missing:
            raise PolyretError(f"dataset {self.name}: languages {sorted(missing)} not in languages={self.languages}")
        n_cand = len(self.candidates)
        rel: list[np.ndarray] = []
        for q, r in zip(self.questions, self.relevant):
            arr = np.unique(np.asarray(r, dtype=np.int64))  # sorted, no duplicates
            if arr.size == 0:
                raise PolyretError(f"dataset {self.name}: question {q.key} has no relevant candidate")
            if arr[0] < 0 or arr[-1] >= n_cand:
                raise PolyretError(f"dataset {self.name}: question {q.key} points at a candidate index out of range")
            rel.append(arr)
        self.relevant = rel
        for what, keys in (
            ("question", [q.key for q in self.questions]),
            ("candidate", [c.cid for c in self.candidates]),
        ):
            dup = [k for k, n in Counter(keys).items() if n > 1]
            if dup:
                raise PolyretError(f"dataset {self.name}: duplicate {what} id {dup[0]!r}")

    # ---- in-memory construction -------------------------------------------------------------
    @classmethod
    def from_groups(
        cls,
        groups: Iterable,
        name: str = "groups",
        languages: Sequence[str] | None = None,
        *,
        with_negatives: bool = True,
    ) -> "LareqaDataset":
        """A pool from parallel groups (objects with `.id`, `.queries` {lang: text}, `.positives` {lang: text},
        optional `.negatives` {lang: [text, ...]}).

        Every query of a group is relevant to every positive of the same group (across languages);
        each positive becomes one candidate (paragraph id = group id, position 0, context = itself).
        `with_negatives`: a group's hard negatives (e.g. the other sentences of the answer's paragraph)
        join the pool as candidates relevant to no query — the LAReQA shape, where the answer sentence
        must beat its own paragraph's neighbours. Without them a sentence pool only asks "which
        paragraph", and a model that forgets how to pick the sentence looks as good as the base.
        A negative whose text (in its language) is already a candidate is not added twice.
        """
        import numpy as np

        questions: list[LareqaQuestion] = []
        candidates: list[LareqaCandidate] = []
        q_group: list[int] = []
        pos_by_group: list[list[int]] = []
        groups = list(groups)
        for gi, g in enumerate(groups):
            gid = str(g.id)
            cand_idx = []
            for lang, text in g.positives.items():
                cand_idx.append(len(candidates))
                candidates.append(LareqaCandidate(lang, text, text, gid, 0))
            pos_by_group.append(cand_idx)
            for lang, text in g.queries.items():
                questions.append(LareqaQuestion(gid, lang, text))
                q_group.append(gi)
        if with_negatives:
            seen = {(c.lang, c.sentence) for c in candidates}
            for g in groups:
                for lang, texts in (getattr(g, "negatives", None) or {}).items():
                    position = 0  # the positive's; a group's negatives in a language follow it
                    for text in texts:
                        if (lang, text) in seen:
                            continue
                        seen.add((lang, text))
                        position += 1
                        candidates.append(LareqaCandidate(lang, text, text, str(g.id), position))
        relevant = [np.asarray(pos_by_group[gi], dtype=np.int64) for gi in q_group]
        ds = cls(name, questions, candidates, relevant, tuple(languages or ()))
        return ds.grouped_by_language()

    def grouped_by_language(self) -> "LareqaDataset":
        """The same dataset with questions and candidates ordered by language (stable)."""
        import numpy as np

        lang_pos = {l: i for i, l in enumerate(self.languages)}
        q_order = sorted(range(len(self.questions)), key=lambda i: lang_pos[self.questions[i].lang])
        c_order = sorted(range(len(self.candidates)), key=lambda i: lang_pos[self.candidates[i].lang])
        new_index = np.empty(len(c_order), dtype=np.int64)
        new_index[c_order] = np.arange(len(c_order))
        return LareqaDataset(
            self.name,
            [self.questions[i] for i in q_order],
            [self.candidates[i] for i in c_order],
            [new_index[self.relevant[i]] for i in q_order],
            self.languages,
            dict(self.load_warnings),
        )

    # ---- views used by the evaluator --------------------------------------------------------
    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def n_candidates(self) -> int:
        return len(self.candidates)

    def question_lang_ids(self) -> np.ndarray:
        """Index into `languages` of every question's language."""
        import numpy as np

        pos = {l: i for i, l in enumerate(self.languages)}
        return np.fromiter((pos[q.lang] for q in self.questions), dtype=np.int64, count=len(self.questions))

    def candidate_lang_ids(self) -> np.ndarray:
        """Index into `languages` of every candidate's language."""
        import numpy as np

        pos = {l: i for i, l in enumerate(self.languages)}
        return np.fromiter((pos[c.lang] for c in self.candidates), dtype=np.int64, count=len(self.candidates))

    def relevant_matrix(self) -> np.ndarray:
        """(n_questions, max relevant) candidate indices, padded with -1."""
        import numpy as np

        width = max((len(r) for r in self.relevant), default=0)
        out = np.full((len(self.relevant), width), -1, dtype=np.int64)
        for i, r in enumerate(self.relevant):
            out[i, : len(r)] = r
        return out

    def question_texts(self) -> list[str]:
        return [q.text for q in self.questions]

    def candidate_texts(self, candidate: str = "sentence") -> list[str]:
        """What the encoder sees per candidate: the sentence, or (`sentence+context`) the sentence
        followed by its paragraph, as LAReQA's reference encoder pairs an answer with its context."""
        if candidate == "sentence":
            return [c.sentence for c in self.candidates]
        if candidate == "sentence+context":
            return [f"{c.sentence} {c.context}" for c in self.candidates]
        raise PolyretError(f"unknown candidate mode {candidate!r}; use 'sentence' or 'sentence+context'")

    def stats(self) -> dict[str, dict[str, int]]:
        """Per language: number of questions and candidates."""
        nq = Counter(q.lang for q in self.questions)
        nc = Counter(c.lang for c in self.candidates)
        return {l: {"questions": nq.get(l, 0), "candidates": nc.get(l, 0)} for l in self.languages}


# ---- loading from LAReQA JSON files ---------------------------------------------------------


def _resolve_dir(data_dir: str | Path) -> Path:
    p = Path(data_dir).expanduser()
    if p.is_dir():
        return p
    # A bare name like "xquad-r" resolves inside the data directory (lareqa/<name>).
    if not p.is_absolute() and len(p.parts) == 1:
        root = find_data_dir(required=False)
        if root is not None:
            for cand in (root / "lareqa" / p.name, root / p.name):
                if cand.is_dir():
                    return cand
    raise PolyretError(f"{data_dir}: no such LAReQA data directory (expected a folder of LL.json files)")


def _where(path: Path, ai: int, title, pi: int | None = None) -> str:
    w = f"{path}: article {ai} ({title!r})" if title is not None else f"{path}: article {ai}"
    return w if pi is None else f"{w}, paragraph {pi}"


def _require(obj, key: str, typ, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise PolyretError(f"{where}: missing field '{key}'")
    val = obj[key]
    if not isinstance(val, typ) or isinstance(val, bool):
        raise PolyretError(f"{where}: field '{key}' has the wrong type ({type(val).__name__})")
    return val


def check_lareqa_paragraph(par, where: str) -> tuple[str, list[tuple[int, int]], list[str], list]:
    """The one validator of a LAReQA paragraph (eval lareqa, export-beir and build-pairs all use it):
    (context, sentence spans, sentence strings, qas), or a PolyretError naming the paragraph."""
    context = _require(par, "context", str, where)
    breaks = _require(par, "sentence_breaks", list, where)
    sentences = _require(par, "sentences", list, where)
    qas = _require(par, "qas", list, where)
    if len(breaks) != len(sentences):
        raise PolyretError(f"{where}: {len(breaks)} sentence_breaks but {len(sentences)} sentences")
    if not breaks and qas:
        raise PolyretError(f"{where}: questions but no sentences")
    spans: list[tuple[int, int]] = []
    for si, (span, sent) in enumerate(zip(breaks, sentences)):
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
        ):
            raise PolyretError(f"{where}: sentence_breaks[{si}] is not a [start, end] pair of integers (got {span!r})")
        if not 0 <= span[0] <= span[1] <= len(context):
            raise PolyretError(
                f"{where}: sentence_breaks[{si}] = {span} is outside the context ({len(context)} characters)"
            )
        if not isinstance(sent, str):
            raise PolyretError(f"{where}: sentences[{si}] is not a string (got {type(sent).__name__} {sent!r})")
        spans.append((span[0], span[1]))
    return context, spans, sentences, qas


def check_answer_start(start: int, context: str, qwhere: str) -> int:
    """An answer start must lie inside its context (one verdict for every command reading LAReQA/SQuAD)."""
    if not 0 <= start < len(context):
        raise PolyretError(f"{qwhere}: answer_start {start} is outside its context ({len(context)} characters)")
    return start


def _read_language_file(path: Path, lang: str, warn_counts: Counter):
    """Parse one LL.json -> (questions, candidates, answer candidate index per question)."""
    raw = read_json(path)
    articles = _require(raw, "data", list, f"{path}")
    questions: list[LareqaQuestion] = []
    candidates: list[LareqaCandidate] = []
    answer_local: list[int] = []  # index into `candidates` of each question's answer sentence
    seen_ids: dict[str, str] = {}
    for ai, art in enumerate(articles):
        title = art.get("title") if isinstance(art, dict) else None
        paragraphs = _require(art, "paragraphs", list, _where(path, ai, title))
        for pi, par in enumerate(paragraphs):
            where = _where(path, ai, title, pi)
            context, spans, sentences, qas = check_lareqa_paragraph(par, where)
            if mismatches := sum(context[a:b] != t for (a, b), t in zip(spans, sentences)):
                warn_counts[WARN_SENTENCE_MISMATCH] += mismatches  # no key for 0: it would warn "0 x ..."
            first = len(candidates)
            paragraph_id = f"{ai}-{pi}"
            for si, sent in enumerate(sentences):
                candidates.append(LareqaCandidate(lang, sent, context, paragraph_id, si))
            for qi, qa in enumerate(qas):
                qwhere = f"{where}, question {qi}"
                qid = _require(qa, "id", str, qwhere)
                qwhere = f"{where}, question id {qid!r}"
                text = _require(qa, "question", str, qwhere)
                answers = _require(qa, "answers", list, qwhere)
                if not answers:
                    raise PolyretError(f"{qwhere}: empty 'answers'")
                start = check_answer_start(
                    _require(answers[0], "answer_start", int, f"{qwhere}, answers[0]"), context, qwhere
                )
                if qid in seen_ids:
                    raise PolyretError(f"{qwhere}: duplicate question id (first seen at {seen_ids[qid]})")
                seen_ids[qid] = where
                hit = next((si for si, (s, e) in enumerate(spans) if s <= start < e), None)
                if hit is None:
                    warn_counts[WARN_NO_SPAN] += 1
                    before = [si for si, (s, _) in enumerate(spans) if s <= start]
                    hit = max(before, key=lambda si: spans[si][0]) if before else 0
                questions.append(LareqaQuestion(qid, lang, text))
                answer_local.append(first + hit)
    return questions, candidates, answer_local


def available_languages(data_dir: str | Path) -> list[str]:
    """Language codes of the `LL.json` files in a LAReQA folder, sorted."""
    d = _resolve_dir(data_dir)
    return sorted(p.stem for p in d.glob("*.json") if not p.name.startswith("."))


def load_lareqa(data_dir: str | Path, langs: Sequence[str] | None = None, name: str | None = None) -> LareqaDataset:
    """Load a LAReQA folder (`LL.json` per language), optionally only some languages.

    `data_dir` is a folder, or a bare data-set name (`xquad-r`) looked up in the data directory.
    Relevance is computed among the loaded languages only.
    """
    d = _resolve_dir(data_dir)
    have = available_languages(d)
    if not have:
        raise PolyretError(f"{d}: no LL.json files (expected e.g. en.json, de.json)")
    if langs:
        langs = list(dict.fromkeys(langs))
        missing = [l for l in langs if l not in have]
        if missing:
            raise PolyretError(f"{d}: no file for language(s) {', '.join(missing)} (available: {', '.join(have)})")
    else:
        langs = have
    questions: list[LareqaQuestion] = []
    candidates: list[LareqaCandidate] = []
    answer_of_question: list[int] = []
    warn_total: Counter = Counter()
    for lang in langs:
        path = d / f"{lang}.json"
        counts: Counter = Counter()
        qs, cs, ans = _read_language_file(path, lang, counts)
        offset = len(candidates)
        questions += qs
        candidates += cs
        answer_of_question += [offset + a for a in ans]
        for msg, n in counts.items():
            warnings.warn(f"{path}: {n} x {msg}", stacklevel=2)
        warn_total.update(counts)
    if not questions:
        raise PolyretError(
            f"{d}: no questions in {', '.join(f'{l}.json' for l in langs)} (every 'paragraphs' list is empty?)"
        )
    # Relevant: the answer sentence of the same question id in every loaded language.
    answers_by_qid: dict[str, list[int]] = {}
    for q, a in zip(questions, answer_of_question):
        answers_by_qid.setdefault(q.qid, []).append(a)
    import numpy as np  # here, not at the top: a folder refused above never loads numpy

    relevant = [np.asarray(answers_by_qid[q.qid], dtype=np.int64) for q in questions]
    return LareqaDataset(
        name or d.name,
        questions,
        candidates,
        relevant,
        tuple(langs),
        dict(warn_total),
    )


def write_lareqa_file(path: str | Path, articles: Sequence[Mapping]) -> None:
    """Write LAReQA-format JSON (used to build fixtures and exports); `articles` are SQuAD articles."""
    write_text(path, json.dumps({"version": "1.1", "data": list(articles)}, ensure_ascii=False))


# ---- subsets (smaller pools for quick runs; their numbers compare only with each other) ----


def every_nth_paragraph(dataset: LareqaDataset, every: int) -> LareqaDataset:
    """Every `every`-th paragraph (by sorted paragraph id, the same in all languages): its questions
    and all its candidates in every language. A smaller, still 11-way parallel pool for machines
    where encoding all of XQuAD-R per model does not fit; numbers are not comparable to the full
    pool's (fewer distractors), only to each other."""
    if every <= 1:
        return dataset
    pids = sorted({c.paragraph_id for c in dataset.candidates})
    keep = set(pids[::every])
    new_index = {}
    cands = []
    for i, c in enumerate(dataset.candidates):
        if c.paragraph_id in keep:
            new_index[i] = len(cands)
            cands.append(c)
    questions, relevant = [], []
    for q, rel in zip(dataset.questions, dataset.relevant):
        kept = [new_index[int(i)] for i in rel if int(i) in new_index]
        if kept and len(kept) == len(rel):
            questions.append(q)
            relevant.append(kept)
    return LareqaDataset(
        f"{dataset.name} (every {every}th paragraph: {len(keep)} of {len(pids)})",
        questions,
        cands,
        relevant,
        dataset.languages,
    )


def first_paragraphs(dataset: LareqaDataset, max_paragraphs: int) -> LareqaDataset:
    """The first `max_paragraphs` paragraphs of each language (file order) and the questions with a
    relevant sentence among them (relevant sets cut to what is kept). For smoke runs: the task is
    smaller and easier than the full pool, so its numbers are not comparable with full runs."""
    import numpy as np

    kept_pids: dict[str, list[str]] = {}
    keep_c = []
    for i, c in enumerate(dataset.candidates):
        pids = kept_pids.setdefault(c.lang, [])
        if c.paragraph_id not in pids and len(pids) < max_paragraphs:
            pids.append(c.paragraph_id)
        if c.paragraph_id in pids:
            keep_c.append(i)
    new_index = np.full(dataset.n_candidates, -1, dtype=np.int64)
    new_index[keep_c] = np.arange(len(keep_c))
    questions, relevant = [], []
    for q, rel in zip(dataset.questions, dataset.relevant):
        r = new_index[rel]
        r = r[r >= 0]
        if r.size:
            questions.append(q)
            relevant.append(r)
    if not questions:
        raise PolyretError(f"LAReQA {dataset.name}: no question has an answer in the first {max_paragraphs} paragraphs")
    return LareqaDataset(
        f"{dataset.name}[:{max_paragraphs} paragraphs]",
        questions,
        [dataset.candidates[i] for i in keep_c],
        relevant,
        dataset.languages,
        dict(dataset.load_warnings),
    )
