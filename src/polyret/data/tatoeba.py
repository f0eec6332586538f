"""Reader for the LASER Tatoeba bitext test set: `tatoeba.XXX-eng.XXX` / `tatoeba.XXX-eng.eng`.

Line i of one file translates line i of the other. Languages are named by the files' ISO 639-3
codes (`deu`, `swh`, `cmn`, ...); the common two-letter codes used elsewhere in polyret (XNLI,
XQuAD-R) are accepted too and mapped through `ISO1_TO_TATOEBA`.

Two sides, as XNLI dev is split (`polyret.data.parallel`), so that alignment may train on one and
`eval tatoeba --side eval` score the other:
- the **evaluation side**: the lines whose English sentence falls on it by a stable hash of that
  sentence (about half of every file). By the sentence, not the line number, because Tatoeba repeats
  English sentences (within a file and across languages): every copy of one falls on the same side.
  It depends on the line alone, so it is the same whatever other files the directory holds;
- the **alignment side**: the other lines, less any line whose sentence in either language is a text
  of any language's evaluation side (a sentence shared by two languages, or equal to an English one).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from polyret.data.xnli import read_text_lines
from polyret.errors import PolyretError

SIDES = ("all", "align", "eval")

# Two-letter codes of the XNLI / XQuAD-R / MLQA / MIRACL languages -> Tatoeba file codes.
ISO1_TO_TATOEBA: dict[str, str] = {
    "ar": "ara",
    "bg": "bul",
    "bn": "ben",
    "de": "deu",
    "el": "ell",
    "es": "spa",
    "fa": "pes",
    "fi": "fin",
    "fr": "fra",
    "hi": "hin",
    "id": "ind",
    "it": "ita",
    "ja": "jpn",
    "ko": "kor",
    "nl": "nld",
    "pl": "pol",
    "pt": "por",
    "ru": "rus",
    "sw": "swh",
    "te": "tel",
    "th": "tha",
    "tr": "tur",
    "uk": "ukr",
    "ur": "urd",
    "vi": "vie",
    "zh": "cmn",
}


@dataclass
class Bitext:
    """Aligned sentences: `other[i]` translates `english[i]`."""

    lang: str  # the Tatoeba code (e.g. "deu")
    other: list[str]
    english: list[str]

    def __len__(self) -> int:
        return len(self.english)

    def take(self, rows: list[int]) -> "Bitext":
        return Bitext(self.lang, [self.other[i] for i in rows], [self.english[i] for i in rows])


def tatoeba_code(lang: str) -> str:
    """`de` -> `deu`; a three-letter code is returned unchanged."""
    lang = lang.strip().lower()
    return ISO1_TO_TATOEBA.get(lang, lang)


def available_tatoeba_languages(tatoeba_dir: str | Path) -> list[str]:
    """Codes XXX with both `tatoeba.XXX-eng.XXX` and `tatoeba.XXX-eng.eng`, sorted."""
    d = Path(tatoeba_dir)
    if not d.is_dir():
        raise PolyretError(f"Tatoeba directory {d} does not exist")
    out = []
    for p in d.glob("tatoeba.*-eng.eng"):
        code = p.name[len("tatoeba.") : -len("-eng.eng")]
        if (d / f"tatoeba.{code}-eng.{code}").is_file():
            out.append(code)
    return sorted(out)


def tatoeba_files(tatoeba_dir: str | Path, lang: str) -> tuple[Path, Path]:
    code = tatoeba_code(lang)
    d = Path(tatoeba_dir)
    return d / f"tatoeba.{code}-eng.{code}", d / f"tatoeba.{code}-eng.eng"


def _lines(path: Path) -> list[str]:
    lines = read_text_lines(path)
    for i, ln in enumerate(lines, start=1):
        if not ln.strip():
            raise PolyretError(f"{path}, line {i}: blank line (every line must hold one sentence)")
    return [ln.strip() for ln in lines]


def read_tatoeba(tatoeba_dir: str | Path, lang: str) -> Bitext:
    """Read one language's pair of files; error when either is missing or they differ in length."""
    other_path, eng_path = tatoeba_files(tatoeba_dir, lang)
    missing = [str(p) for p in (other_path, eng_path) if not p.is_file()]
    if missing:
        raise PolyretError(f"Tatoeba language {lang!r}: missing {', '.join(missing)}")
    other, english = _lines(other_path), _lines(eng_path)
    if len(other) != len(english):
        raise PolyretError(
            f"{other_path} ({len(other)} lines) and {eng_path} ({len(english)} lines) are not line-aligned"
        )
    if not english:
        raise PolyretError(f"{eng_path} is empty")
    return Bitext(tatoeba_code(lang), other, english)


def on_eval_side(english: str) -> bool:
    """Whether a line whose English sentence is `english` belongs to the evaluation side."""
    return hashlib.blake2b(english.strip().encode("utf-8"), digest_size=8).digest()[0] % 2 == 1


def tatoeba_eval_texts(tatoeba_dir: str | Path) -> set[str]:
    """Every sentence (either language) of every language's evaluation side in the directory."""
    texts: set[str] = set()
    for code in available_tatoeba_languages(tatoeba_dir):
        bt = read_tatoeba(tatoeba_dir, code)
        for other, english in zip(bt.other, bt.english):
            if on_eval_side(english):
                texts.update((other, english))
    return texts


def tatoeba_side(bitext: Bitext, side: str, eval_texts: set[str] | None = None) -> Bitext:
    """The lines of `side` ('all' | 'align' | 'eval'). 'align' needs `eval_texts`
    (`tatoeba_eval_texts` of the directory) to leave out lines that share a sentence with it."""
    if side not in SIDES:
        raise PolyretError(f"unknown Tatoeba side {side!r}; use one of {', '.join(SIDES)}")
    if side == "all":
        return bitext
    if side == "eval":
        return bitext.take([i for i, e in enumerate(bitext.english) if on_eval_side(e)])
    if eval_texts is None:
        raise PolyretError("the Tatoeba alignment side needs the evaluation side's texts (tatoeba_eval_texts)")
    return bitext.take(
        [
            i
            for i, (o, e) in enumerate(zip(bitext.other, bitext.english))
            if not on_eval_side(e) and o not in eval_texts and e not in eval_texts
        ]
    )
