"""Sentence splitting for the `sentence` training unit, and its agreement with LAReQA's gold breaks.

Splitters are kept multilingual libraries, never our own regex:
- ``sentencex`` (Wikimedia; ~300 languages incl. CJK, Thai, Devanagari, Arabic punctuation) -- default;
- ``pysbd`` (rule-based; 23 languages, others fall back to its English rules);
- ``auto`` (default): sentencex, except Thai -> PyThaiNLP's CRF sentence model (``crfcut``) when
  pythainlp is installed. Thai marks sentences with spaces that also occur inside sentences, which
  punctuation-rule splitters cannot resolve (sentencex leaves a Thai paragraph whole).

`split_spans(text, lang)` returns ``[start, end)`` character spans into `text`, trimmed of surrounding
whitespace, covering every non-space character, in order. `sentence_agreement()` measures, per
language, exact-match precision / recall / F1 of those spans against the gold ``sentence_breaks``
of an XQuAD-R-style file (after the same whitespace trimming of the gold spans).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from polyret.errors import PolyretError
from polyret.io import read_json
from polyret.paths import data_path
from polyret.report import markdown_table

SPLITTERS = ("auto", "sentencex", "pysbd")
DEFAULT_SPLITTER = "auto"

# pysbd's language codes (others fall back to English rules).
_PYSBD_LANGS = {
    "en",
    "hi",
    "mr",
    "zh",
    "es",
    "am",
    "ar",
    "hy",
    "bg",
    "ur",
    "ru",
    "pl",
    "fa",
    "nl",
    "da",
    "fr",
    "my",
    "el",
    "it",
    "ja",
    "de",
    "kk",
    "sk",
}


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _sentencex_spans(text: str, lang: str) -> list[tuple[int, int]]:
    import sentencex

    return [(b["start_index"], b["end_index"]) for b in sentencex.get_sentence_boundaries(lang, text)]


@lru_cache(maxsize=64)
def _pysbd_segmenter(lang: str):
    import pysbd

    return pysbd.Segmenter(language=lang if lang in _PYSBD_LANGS else "en", clean=False, char_span=True)


def _pysbd_spans(text: str, lang: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in _pysbd_segmenter(lang).segment(text)]


def _pythainlp_spans(text: str) -> list[tuple[int, int]]:
    from pythainlp.tokenize import sent_tokenize

    spans, pos = [], 0
    for sent in sent_tokenize(text, engine="crfcut"):
        i = text.find(sent, pos)
        if i < 0:  # the tokenizer altered the text; split_spans covers the gap
            continue
        spans.append((i, i + len(sent)))
        pos = i + len(sent)
    return spans


@lru_cache(maxsize=1)
def _has_pythainlp() -> bool:
    try:
        import pycrfsuite  # noqa: F401
        import pythainlp.tokenize  # noqa: F401
    except ImportError:
        return False
    return True


def _auto_spans(text: str, lang: str) -> list[tuple[int, int]]:
    if lang == "th" and _has_pythainlp():
        return _pythainlp_spans(text)
    return _sentencex_spans(text, lang)


_IMPL: dict[str, Callable[[str, str], list[tuple[int, int]]]] = {
    "auto": _auto_spans,
    "sentencex": _sentencex_spans,
    "pysbd": _pysbd_spans,
}


def split_spans(text: str, lang: str, splitter: str = DEFAULT_SPLITTER) -> list[tuple[int, int]]:
    """Sentence spans ``[start, end)`` of `text` (whitespace-trimmed, non-empty, in order).

    Any text the library leaves uncovered (it should not) is added as its own span, so the spans
    always cover every non-space character exactly once.
    """
    if splitter not in _IMPL:
        raise PolyretError(f"unknown sentence splitter {splitter!r}; choose one of {', '.join(SPLITTERS)}")
    raw = sorted(_IMPL[splitter](text, lang))
    spans: list[tuple[int, int]] = []
    pos = 0
    for start, end in raw:
        start = max(start, pos)
        if start > pos and (gap := _trim(text, pos, start)):
            spans.append(gap)
        if (s := _trim(text, start, end)) is not None:
            spans.append(s)
        pos = max(pos, end)
    if pos < len(text) and (tail := _trim(text, pos, len(text))):
        spans.append(tail)
    return spans


def split_sentences(text: str, lang: str, splitter: str = DEFAULT_SPLITTER) -> list[str]:
    return [text[a:b] for a, b in split_spans(text, lang, splitter)]


def sentence_at(spans: list[tuple[int, int]], offset: int) -> int:
    """Index of the span holding character `offset` (or the span right after it, when it sits in
    the whitespace between two sentences); -1 if offset is past the last sentence."""
    for i, (a, b) in enumerate(spans):
        if offset < b:
            return i
    return -1


# ------------------------------------------------------------------------------------ agreement
@dataclass
class Agreement:
    lang: str
    splitter: str
    paragraphs: int
    gold: int
    predicted: int
    matched: int
    precision: float
    recall: float
    f1: float
    # share of (question, gold answer sentence) pairs whose predicted answer sentence is exactly the gold one
    answer_sentence_exact: float


def span_f1(gold: Iterable[tuple[int, int]], pred: Iterable[tuple[int, int]]) -> tuple[int, int, int]:
    """(matched, n_gold, n_pred) for exact span match."""
    g, p = set(gold), set(pred)
    return len(g & p), len(g), len(p)


def _prf(matched: int, n_gold: int, n_pred: int) -> tuple[float, float, float]:
    p = matched / n_pred if n_pred else 0.0
    r = matched / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def agreement_for_file(path: str | Path, lang: str | None = None, splitter: str = DEFAULT_SPLITTER) -> Agreement:
    """Agreement of `splitter` with the gold `sentence_breaks` of one XQuAD-R-style file."""
    path = Path(path)
    lang = lang or path.stem

    data = read_json(path)
    matched = n_gold = n_pred = n_par = 0
    ans_total = ans_ok = 0
    for ai, article in enumerate(data.get("data", [])):
        for pi, par in enumerate(article.get("paragraphs", [])):
            ctx = par.get("context")
            breaks = par.get("sentence_breaks")
            if not isinstance(ctx, str) or not isinstance(breaks, list):
                raise PolyretError(f"{path}: data[{ai}].paragraphs[{pi}] lacks 'context' or 'sentence_breaks'")
            gold = [s for a, b in breaks if (s := _trim(ctx, a, b))]
            pred = split_spans(ctx, lang, splitter)
            m, g, p = span_f1(gold, pred)
            matched, n_gold, n_pred, n_par = matched + m, n_gold + g, n_pred + p, n_par + 1
            for qa in par.get("qas", []):
                answers = qa.get("answers") or []
                if not answers or not answers[0].get("text"):
                    continue
                start = answers[0]["answer_start"]
                gi, pi_ = sentence_at(gold, start), sentence_at(pred, start)
                ans_total += 1
                ans_ok += gi >= 0 and pi_ >= 0 and gold[gi] == pred[pi_]
    p, r, f = _prf(matched, n_gold, n_pred)
    return Agreement(lang, splitter, n_par, n_gold, n_pred, matched, p, r, f, ans_ok / ans_total if ans_total else 0.0)


def sentence_agreement(
    xquad_r_dir: str | Path | None = None,
    langs: Iterable[str] | None = None,
    splitters: Iterable[str] = SPLITTERS,
) -> list[Agreement]:
    """Per language and splitter, agreement with the gold breaks of ``lareqa/xquad-r/LL.json``."""
    if xquad_r_dir is None:
        xquad_r_dir = data_path("lareqa", "xquad-r")
    xquad_r_dir = Path(xquad_r_dir)
    files = sorted(xquad_r_dir.glob("*.json"))
    if langs is not None:
        wanted = set(langs)
        files = [f for f in files if f.stem in wanted]
    if not files:
        raise PolyretError(f"{xquad_r_dir}: no XQuAD-R language files (LL.json)")
    return [agreement_for_file(f, f.stem, s) for s in splitters for f in files]


def agreement_table(rows: list[Agreement]) -> str:
    """Markdown table: one row per language, F1 (and answer-sentence exact match) per splitter."""
    splitters = sorted({r.splitter for r in rows}, key=list(SPLITTERS).index)
    langs = sorted({r.lang for r in rows})
    by = {(r.lang, r.splitter): r for r in rows}
    rows = []
    for lang in langs + ["mean"]:
        cells = []
        for s in splitters:
            if lang == "mean":
                rs = [by[(x, s)] for x in langs]
                f, a = sum(r.f1 for r in rs) / len(rs), sum(r.answer_sentence_exact for r in rs) / len(rs)
            else:
                f, a = by[(lang, s)].f1, by[(lang, s)].answer_sentence_exact
            cells += [f"{f:.3f}", f"{a:.3f}"]
        rows.append([lang, *cells])
    headers = ["lang", *[h for s in splitters for h in (f"{s} span F1", f"{s} answer-sentence match")]]
    return markdown_table(headers, rows)


def agreement_json(rows: list[Agreement]) -> list[dict]:
    return [asdict(r) for r in rows]


if __name__ == "__main__":  # python -m polyret.data.sentences  -> prints the agreement table
    print(agreement_table(sentence_agreement()))
