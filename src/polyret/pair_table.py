"""Training rows expanded from parallel groups (`PairTable`), the input of polyret.batches' samplers.

A table row is one group x query language x passage language; `to_dataset()` holds only the text
columns the loss sees, the group / language / source metadata stays in numpy arrays on the table.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from polyret.data.groups import ParallelGroup
from polyret.data.parallel import english_columns, english_source
from polyret.errors import PolyretError

NEGATIVE_POLICIES = ("fill", "drop")
NEGATIVE_LANGUAGES = ("passage", "query")


def text_key(text: str) -> int:
    """A stable 64-bit key of a passage text. Python's own str hash is salted per process, and DDP
    ranks must agree on which groups conflict, so the key must not depend on the process."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class PairTable:
    """Training rows expanded from parallel groups, with metadata kept outside the dataset columns.

    Row r: ``anchors[r]`` (query text), ``positives[r]`` (passage text), ``negatives[r]`` (list of
    ``n_negatives`` texts), ``group_index[r]`` (index into ``group_ids`` / ``group_sources``),
    ``query_lang[r]``, ``passage_lang[r]``, ``source[r]``.

    Hard negatives (``n_negatives=k > 0``): each row takes k of its group's negatives in the passage
    language (``negatives_language="passage"``) or in the query's language (``"query"``: distractors
    in the question's own language that answer nothing, the texts that crowd a multilingual pool), a
    seeded random choice when it has more. Rows with fewer than k:
    - ``negatives_policy="fill"`` (default): the missing slots get positives of other groups in the
      language (random negatives, seeded): of the same source for passage-language negatives, of the
      other sources first for query-language ones (see `_NegativeChooser`). A text borrowed within the
      source joins the row's group conflict keys, so the lending group never shares a batch with the borrower.
    - ``negatives_policy="drop"``: the row is removed (counted in ``stats["rows_dropped_negatives"]``).
    """

    def __init__(self) -> None:
        self.anchors: list[str] = []
        self.positives: list[str] = []
        self.negatives: list[list[str]] = []
        self.english_sources: list[tuple[str | None, str | None]] = []  # per row: what its 2 texts translate
        self.n_negatives = 0
        self.group_ids: list[str] = []
        self.group_sources: list[str] = []
        self.group_keys: list[frozenset[int]] = []
        self.group_index = np.zeros(0, dtype=np.int64)
        self.query_lang = np.zeros(0, dtype=object)
        self.passage_lang = np.zeros(0, dtype=object)
        self.source = np.zeros(0, dtype=object)
        self.stats: dict[str, int] = {}
        self._dataset_fingerprints: set[str] = set()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_groups(
        cls,
        groups: Sequence[ParallelGroup],
        n_negatives: int = 0,
        negatives_policy: str = "fill",
        seed: int = 0,
        negatives_language: str = "passage",
    ) -> "PairTable":
        if n_negatives < 0:
            raise PolyretError(f"n_negatives must be >= 0, got {n_negatives}")
        if negatives_policy not in NEGATIVE_POLICIES:
            raise PolyretError(f"negatives_policy must be one of {NEGATIVE_POLICIES}, got {negatives_policy!r}")
        if negatives_language not in NEGATIVE_LANGUAGES:
            raise PolyretError(f"negatives_language must be one of {NEGATIVE_LANGUAGES}, got {negatives_language!r}")
        if not groups:
            raise PolyretError("no training groups given")
        t = cls()
        t.n_negatives = n_negatives
        rng = np.random.default_rng([seed, 7])
        negatives = _NegativeChooser(groups, n_negatives, negatives_policy, rng, negatives_language)
        rows: list[tuple[int, str, str, str]] = []  # (group index, query language, passage language, source)
        for gi, g in enumerate(groups):
            t.group_ids.append(g.id)
            t.group_sources.append(g.source)
            gkeys = {text_key(s) for s in g.passage_texts}
            for q in sorted(g.queries):
                for p in (p for p in sorted(g.positives) if g.positives[p] != g.queries[q]):  # bitexts: no x->x
                    negs = negatives.for_row(gi, g, p, q, gkeys)
                    if negs is None:
                        continue
                    t.anchors.append(g.queries[q])
                    t.positives.append(g.positives[p])
                    t.negatives.append(negs)
                    t.english_sources.append((english_source(g.queries, q), english_source(g.positives, p)))
                    rows.append((gi, q, p, g.source))
            t.group_keys.append(frozenset(gkeys))
        t._set_row_arrays(rows)
        t.stats = t._stats(groups, negatives)
        if not t.anchors:
            raise PolyretError("no training rows left (every row lacked the requested hard negatives)")
        return t

    def _set_row_arrays(self, rows: list[tuple[int, str, str, str]]) -> None:
        self.group_index = np.asarray([r[0] for r in rows], dtype=np.int64)
        self.query_lang = np.asarray([r[1] for r in rows], dtype=object)
        self.passage_lang = np.asarray([r[2] for r in rows], dtype=object)
        self.source = np.asarray([r[3] for r in rows], dtype=object)

    def _stats(self, groups: Sequence[ParallelGroup], negatives: "_NegativeChooser") -> dict[str, int]:
        same = self.query_lang == self.passage_lang
        return {
            "groups": len(groups),
            "rows": len(self.anchors),
            "rows_same_language": int(same.sum()),
            "rows_cross_language": int((~same).sum()),
            "single_language_groups": sum(1 for g in groups if len(g.languages) == 1),
            "groups_without_cross_language_pair": len(groups) - len(set(self.group_index[~same].tolist())),
            "rows_dropped_negatives": negatives.dropped,
            "negatives_filled": negatives.filled,
            "rows_identical_skipped": sum(
                a == b for g in groups for a in g.queries.values() for b in g.positives.values()
            ),
        }

    # -- views ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def n_groups(self) -> int:
        return len(self.group_ids)

    @property
    def sources(self) -> list[str]:
        return sorted(set(self.group_sources))

    def columns(self, english: bool = False) -> dict[str, list]:
        cols = {"anchor": list(self.anchors), "positive": list(self.positives)}
        for k in range(self.n_negatives):
            cols[f"negative_{k + 1}"] = [negs[k] for negs in self.negatives]
        return cols | (english_columns(self.anchors, self.positives, self.english_sources) if english else {})

    def to_dataset(self, english: bool = False):
        """A `datasets.Dataset` with columns anchor, positive[, negative_1..k]; row i = table row i.
        english: also the cross-lingual teacher term's columns (`polyret.data.parallel.english_columns`)."""
        from datasets import Dataset

        ds = Dataset.from_dict(self.columns(english))
        self._dataset_fingerprints.add(ds._fingerprint)
        return ds

    def owns_dataset(self, dataset) -> bool:
        """Whether `dataset` has this table's rows: same length, and (when both are known) a
        fingerprint of one of our `to_dataset()` outputs. Formatting/transforms added by the
        trainer may change a fingerprint, so the factory falls back to length alone."""
        if len(dataset) != len(self):
            return False
        fp = getattr(dataset, "_fingerprint", None)
        return fp is None or not self._dataset_fingerprints or fp in self._dataset_fingerprints

    def row_info(self, row: int) -> tuple[int, str, str, str]:
        """(group index, query language, passage language, source) of a row."""
        return int(self.group_index[row]), self.query_lang[row], self.passage_lang[row], self.source[row]


class _NegativeChooser:
    """The hard negatives of each row (see `PairTable`): the group's own in the row's negatives language,
    a seeded choice when it has more than k; missing slots filled from other groups' positives in that
    language (`fill`) or the row dropped (`drop`). Counts `dropped` and `filled`.

    Where the fill comes from: passage-language negatives borrow from the same source. Query-language
    negatives borrow from the *other* sources first: a batch holds one source (polyret.batches), so a text
    borrowed from another source is never a positive of the same batch and needs no conflict key. Same-
    source borrowing must add one (the lender may not share the borrower's batch); every row of a
    sentence-pair set such as XNLI's borrowing so would leave almost no two of its groups free to share
    a batch."""

    def __init__(
        self, groups: Sequence[ParallelGroup], n: int, policy: str, rng: np.random.Generator, language: str
    ) -> None:
        self.n, self.policy, self.rng, self.language = n, policy, rng, language
        self.dropped = self.filled = 0
        # Positives by (source, language) for filling missing negatives: (text, group index).
        self.lenders: dict[tuple[str, str], list[tuple[str, int]]] = {}
        seen: set[tuple[str, str]] = set()
        for gi, g in enumerate(groups):
            if (g.source, g.id) in seen:
                raise PolyretError(f"duplicate group id {g.id!r} in source {g.source!r}")
            seen.add((g.source, g.id))
            for lang, text in g.positives.items():
                self.lenders.setdefault((g.source, lang), []).append((text, gi))
        self._other_sources: dict[tuple[str, str], list[tuple[str, int]]] = {}

    def for_row(self, gi: int, g: ParallelGroup, p_lang: str, q_lang: str, gkeys: set[int]) -> list[str] | None:
        """The row's k negatives (texts borrowed within the source join `gkeys`), or None when the row is dropped."""
        if not self.n:
            return []
        lang = q_lang if self.language == "query" else p_lang
        own = list(g.negatives.get(lang, []))
        if len(own) > self.n:
            pick = self.rng.permutation(len(own))[: self.n]
            own = [own[i] for i in sorted(pick)]
        if len(own) < self.n:
            if self.policy == "drop":
                self.dropped += 1
                return None
            other = self.other_sources(g.source, lang) if self.language == "query" else []
            if other:
                self._fill(own, gi, g.positives.get(lang), other, None)
            else:
                self._fill(own, gi, g.positives.get(lang), self.lenders.get((g.source, lang), []), gkeys)
            if len(own) < self.n:
                self.dropped += 1  # a source/language with too few other passages
                return None
        return own

    def other_sources(self, source: str, lang: str) -> list[tuple[str, int]]:
        key = (source, lang)
        if key not in self._other_sources:
            self._other_sources[key] = [
                t for (s, lg), texts in sorted(self.lenders.items()) if lg == lang and s != source for t in texts
            ]
        return self._other_sources[key]

    def _fill(
        self, own: list[str], gi: int, positive: str | None, pool: list[tuple[str, int]], gkeys: set[int] | None
    ) -> None:
        # Up to 8 tries per slot to find another group's text not already used.
        for _ in range((self.n - len(own)) * 8 if pool else 0):
            text, lender = pool[int(self.rng.integers(len(pool)))]
            if lender != gi and text not in own and text != positive:
                own.append(text)
                if gkeys is not None:
                    gkeys.add(text_key(text))
                self.filled += 1
                if len(own) == self.n:
                    break
