"""Reader for the LASER Tatoeba bitext test set: `tatoeba.XXX-eng.XXX` / `tatoeba.XXX-eng.eng`.

Line i of one file translates line i of the other. Languages are named by the files' ISO 639-3
codes (`deu`, `swh`, `cmn`, ...); the common two-letter codes used elsewhere in polyret (XNLI,
XQuAD-R) are accepted too and mapped through `ISO1_TO_TATOEBA`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from polyret.data.xnli import read_text_lines
from polyret.errors import PolyretError

# Two-letter codes of the XNLI / XQuAD-R / MLQA / MIRACL languages -> Tatoeba file codes.
ISO1_TO_TATOEBA: dict[str, str] = {
    "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "fa": "pes",
    "fi": "fin", "fr": "fra", "hi": "hin", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor",
    "nl": "nld", "pl": "pol", "pt": "por", "ru": "rus", "sw": "swh", "te": "tel", "th": "tha",
    "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "cmn",
}


@dataclass
class Bitext:
    """Aligned sentences: `other[i]` translates `english[i]`."""

    lang: str  # the Tatoeba code (e.g. "deu")
    other: list[str]
    english: list[str]

    def __len__(self) -> int:
        return len(self.english)


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
