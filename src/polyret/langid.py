"""Language identification of plain texts, for fitting a correction on texts with no language field.

Two maintained identifiers that ship their models are supported, each restricted to the candidate
languages (by default the 15 XNLI languages the stored statistics cover):

- `py3langid` (0.4.0): langid.py's naive Bayes over byte n-grams, 97 languages, a 2 MB model;
- `lingua` (lingua-language-detector 2.1.1): n-gram models plus rules, 75 languages, ~100 MB wheel.

Which one polyret uses by default (`DEFAULT_IDENTIFIER`) was decided by measuring both against the
nearest-language-mean inference on XNLI dev and XQuAD-R (docs/correction-module.md).
"""

from __future__ import annotations

from typing import Sequence

from polyret.errors import PolyretError

IDENTIFIERS = ("py3langid", "lingua")
DEFAULT_IDENTIFIER = "py3langid"
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


def _py3langid(candidates: Sequence[str]):
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise PolyretError("language identification needs the package py3langid: pip install py3langid") from None
    ident = LanguageIdentifier.from_model_file(MODEL_FILE)  # a private instance: the module's global stays as it is
    unknown = sorted(set(candidates) - set(ident.labels))
    if unknown:
        raise PolyretError(f"py3langid does not know the language(s) {', '.join(unknown)}")
    ident.set_languages(list(candidates))
    return lambda texts: [ident.classify(t)[0] for t in texts]


def _lingua(candidates: Sequence[str]):
    try:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
    except ImportError:
        raise PolyretError("language identification with lingua needs: pip install lingua-language-detector") from None
    langs = []
    for code in candidates:
        try:
            langs.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except (AttributeError, ValueError):
            raise PolyretError(f"lingua does not know the language {code!r}") from None
    detector = LanguageDetectorBuilder.from_languages(*langs).build()

    def run(texts):
        found = detector.detect_languages_in_parallel_of(list(texts))
        return [l.iso_code_639_1.name.lower() if l is not None else candidates[0] for l in found]

    return run


def identify(
    texts: Sequence[str], candidates: Sequence[str] = XNLI_LANGUAGES, *, identifier: str = DEFAULT_IDENTIFIER
) -> list[str]:
    """Each text's language, one of `candidates` (ISO 639-1 codes)."""
    if identifier not in IDENTIFIERS:
        raise PolyretError(f"unknown language identifier {identifier!r}; choose from {', '.join(IDENTIFIERS)}")
    if not candidates:
        raise PolyretError("language identification needs at least one candidate language")
    run = _py3langid(candidates) if identifier == "py3langid" else _lingua(candidates)
    return run(texts)
