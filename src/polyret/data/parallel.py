"""Parallel text for alignment: XNLI dev split into an alignment side and an evaluation side.

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
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from polyret.data.groups import ParallelGroup
# The two sides are defined with the XNLI readers (English training specs read one side too).
from polyret.data.xnli import XNLI_LANGS, read_xnli_tsv, xnli_file, xnli_premise_index, xnli_side_rows
from polyret.errors import PolyretError

XNLI_SOURCE = "xnli-align"


def xnli_parallel_groups(
    xnli_dir: str | Path, langs: Sequence[str] | None = None, *, side: str = "align", split: str = "dev",
    max_groups: int | None = None,
) -> list[ParallelGroup]:
    """One group per premise of `side`: its entailed hypothesis (query) and the premise (positive)
    in every language of `langs` (default: all 15 XNLI languages); the first `max_groups` only."""
    langs = list(langs or XNLI_LANGS)
    rows = {lang: read_xnli_tsv(xnli_file(xnli_dir, split, lang)) for lang in langs}
    n = {len(r) for r in rows.values()}
    if len(n) != 1:
        raise PolyretError(f"{xnli_dir}: the {split} files of {', '.join(langs)} differ in length, so they are not row-parallel")
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
