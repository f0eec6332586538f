"""Parallel text for alignment: XNLI dev and the Tatoeba test set, each split into an alignment side
and an evaluation side; and the English sources the cross-lingual teacher term pulls toward.

XNLI dev is 15-way parallel (row i of every `dev-LL.tsv` translates row i of the others) and covers
all 11 XQuAD-R languages plus bg, fr, sw, ur, which the MLQA training passages lack. Its 2,490 rows
hold 830 premises, each with an entailed, a neutral and a contradicting hypothesis. polyret uses it
two ways, never the same sentence for both:

- the **alignment side**: the premises at even positions (0, 2, 4, ... in order of first appearance
  in `dev-en.tsv`) with their three hypotheses: 415 premises, 1,245 rows per language. Language
  corrections are fitted on it and training may use it (one group per premise: the entailed
  hypothesis as the query, the premise as the positive, in every language);
- the **evaluation side**: the premises at odd positions with their hypotheses (1,245 rows per
  language); `polyret eval xnli --rows eval-side` (and the experiment suite) scores only these rows
  when the model under test was aligned or trained on the other side.

A premise and its hypotheses always fall on the same side, so no sentence is on both.

Tatoeba's sides are defined in `polyret.data.tatoeba`; `tatoeba_parallel_groups` makes one bitext group
per alignment-side line of the XNLI languages (the sentence and its English as both query and
positive: `PairTable` keeps only the two cross-lingual rows, x -> en and en -> x).

Named training sets (`NAMED_SETS`, a `data:` entry of a training config): `xnli-align`, `tatoeba-align`.
Nothing else in the data directory has an English side that is not evaluated on: MLQA test has no
English file, TyDi QA and MIRACL are monolingual, SNLI / SICK are English only, and XQuAD-R is evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from polyret.data.groups import ParallelGroup
from polyret.data.tatoeba import read_tatoeba, tatoeba_code, tatoeba_eval_texts, tatoeba_side

# The two sides are defined with the XNLI readers (English training specs read one side too).
from polyret.data.xnli import XNLI_LANGS, read_xnli_tsv, xnli_file, xnli_premise_index, xnli_side_rows
from polyret.errors import PolyretError
from polyret.paths import data_path

XNLI_SOURCE = "xnli-align"
TATOEBA_SOURCE = "tatoeba-align"
ENGLISH = "en"


def xnli_parallel_groups(
    xnli_dir: str | Path,
    langs: Sequence[str] | None = None,
    *,
    side: str = "align",
    split: str = "dev",
    max_groups: int | None = None,
) -> list[ParallelGroup]:
    """One group per premise of `side`: its entailed hypothesis (query) and the premise (positive)
    in every language of `langs` (default: all 15 XNLI languages); the first `max_groups` only."""
    langs = list(langs or XNLI_LANGS)
    rows = {lang: read_xnli_tsv(xnli_file(xnli_dir, split, lang)) for lang in langs}
    n = {len(r) for r in rows.values()}
    if len(n) != 1:
        raise PolyretError(
            f"{xnli_dir}: the {split} files of {', '.join(langs)} differ in length, so they are not row-parallel"
        )
    premise = xnli_premise_index(xnli_dir, split)
    keep = set(xnli_side_rows(xnli_dir, side, split).tolist())
    any_lang = rows[langs[0]]
    groups: dict[int, ParallelGroup] = {}
    for r in sorted(keep):
        if any_lang.labels[r] != 0:  # entailment: the hypothesis is a fair "question" for the premise
            continue
        p = int(premise[r])
        if p in groups:
            continue
        groups[p] = ParallelGroup(
            id=f"xnli-{split}-p{p}",
            queries={lang: rows[lang].hypotheses[r] for lang in langs},
            positives={lang: rows[lang].premises[r] for lang in langs},
            source=XNLI_SOURCE,
        )
    return [groups[p] for p in sorted(groups)][:max_groups]


def xnli_side_sentences(xnli_dir: str | Path, lang: str, *, side: str = "align", split: str = "dev") -> list[str]:
    """Every distinct sentence (premises and hypotheses) of one side, in one language."""
    pairs = read_xnli_tsv(xnli_file(xnli_dir, split, lang))
    out: dict[str, None] = {}
    for r in xnli_side_rows(xnli_dir, side, split):
        out.setdefault(pairs.premises[r])
        out.setdefault(pairs.hypotheses[r])
    return list(out)


def tatoeba_parallel_groups(tatoeba_dir: str | Path, langs: Sequence[str] | None = None) -> list[ParallelGroup]:
    """One bitext group per distinct alignment-side line of each language in `langs` (two-letter
    codes; default: the 14 non-English XNLI languages): {lang: sentence, en: its English} as queries
    and as positives."""
    langs = [l for l in (langs or XNLI_LANGS) if l != ENGLISH]
    eval_texts = tatoeba_eval_texts(tatoeba_dir)
    groups = []
    for lang in langs:
        bt = tatoeba_side(read_tatoeba(tatoeba_dir, lang), "align", eval_texts)
        seen: set[tuple[str, str]] = set()
        for i, (other, english) in enumerate(zip(bt.other, bt.english)):
            if (other, english) in seen or other == english:
                continue
            seen.add((other, english))
            texts = {lang: other, ENGLISH: english}
            groups.append(
                ParallelGroup(
                    id=f"tatoeba-{tatoeba_code(lang)}-{i}",
                    queries=dict(texts),
                    positives=dict(texts),
                    source=TATOEBA_SOURCE,
                )
            )
    return groups


# Training-set names a config's `data:` may list, and the groups each stands for.
NAMED_SETS = {
    XNLI_SOURCE: lambda: xnli_parallel_groups(data_path("xnli"), side="align"),
    TATOEBA_SOURCE: lambda: tatoeba_parallel_groups(data_path("tatoeba")),
}


def english_source(texts: dict[str, str], lang: str) -> str | None:
    """The English text that `texts[lang]` translates (a group's queries or positives); None for
    English itself, a group without English, or a text identical to its English (nothing to pull)."""
    en = texts.get(ENGLISH)
    return None if lang == ENGLISH or en is None or en == texts[lang] else en


def english_columns(
    anchors: Sequence[str], positives: Sequence[str], sources: Sequence[tuple[str | None, str | None]]
) -> dict[str, list]:
    """The cross-lingual teacher term's dataset columns (`polyret.losses.TeacherAnchoredLoss`):
    anchor_en / positive_en, the English source of each row's anchor / positive (the text itself where
    it has none: tokenised, never embedded), and label, per row [anchor has one, positive has one]."""
    return {
        "anchor_en": [en or a for (en, _), a in zip(sources, anchors)],
        "positive_en": [en or p for (_, en), p in zip(sources, positives)],
        "label": [[int(a is not None), int(p is not None)] for a, p in sources],
    }
