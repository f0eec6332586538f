"""Parallel groups: the unit of training data.

A parallel group is one question id with its question in each language it has, its positive
passage in each language it has, and optional hard negatives per language. JSONL form, one group
per line:

    {"id": "q17", "queries": {"de": "...", "es": "..."}, "positives": {"es": "...", "vi": "..."},
     "negatives": {"es": ["...", "..."]}, "source": "mlqa-test"}

`source` names the training set a group belongs to (several sets are drawn per batch in
proportion to their size); it defaults to the file's stem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from polyret.errors import PolyretError
from polyret.io import atomic_open, open_text


@dataclass
class ParallelGroup:
    id: str
    queries: dict[str, str]
    positives: dict[str, str]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    source: str = "default"

    def to_json(self) -> dict:
        d = {"id": self.id, "queries": self.queries, "positives": self.positives}
        if self.negatives:
            d["negatives"] = self.negatives
        d["source"] = self.source
        return d

    @property
    def languages(self) -> set[str]:
        return set(self.queries) | set(self.positives)

    @property
    def passage_texts(self) -> set[str]:
        """Every passage text of the group, in any language: its positives and its hard negatives."""
        return set(self.positives.values()).union(*self.negatives.values())


def _check_lang_map(obj, key: str, where: str, *, lists: bool = False) -> dict:
    val = obj.get(key, {} if key == "negatives" else None)
    if not isinstance(val, dict):
        raise PolyretError(f"{where}: field '{key}' must be an object mapping language -> text")
    for lang, text in val.items():
        if lists:
            if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                raise PolyretError(f"{where}: '{key}.{lang}' must be a list of strings")
        elif not isinstance(text, str) or not text.strip():
            raise PolyretError(f"{where}: '{key}.{lang}' must be a non-empty string")
    return val


def group_from_json(obj: dict, where: str, default_source: str) -> ParallelGroup:
    if not isinstance(obj, dict):
        raise PolyretError(f"{where}: expected a JSON object")
    if "id" not in obj:
        raise PolyretError(f"{where}: missing field 'id'")
    queries = _check_lang_map(obj, "queries", where)
    positives = _check_lang_map(obj, "positives", where)
    negatives = _check_lang_map(obj, "negatives", where, lists=True)
    if not queries or not positives:
        raise PolyretError(f"{where}: a group needs at least one query and one positive")
    return ParallelGroup(
        id=str(obj["id"]),
        queries=dict(queries),
        positives=dict(positives),
        negatives={k: list(v) for k, v in negatives.items()},
        source=str(obj.get("source") or default_source),
    )


def iter_groups_jsonl(path: str | Path) -> Iterator[ParallelGroup]:
    path = Path(path)
    if not path.is_file():
        raise PolyretError(f"{path}: no such file")

    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise PolyretError(f"{where}: bad JSON ({e.msg})") from None
            yield group_from_json(obj, where, default_source=path.stem)


def read_groups_jsonl(path: str | Path) -> list[ParallelGroup]:
    groups = list(iter_groups_jsonl(path))
    if not groups:
        raise PolyretError(f"{path}: holds no groups (the file is empty)")
    seen: set[tuple[str, str]] = set()
    for g in groups:
        key = (g.source, g.id)
        if key in seen:
            raise PolyretError(f"{path}: duplicate group id {g.id!r} in source {g.source!r}")
        seen.add(key)
    return groups


def write_groups_jsonl(groups: Iterable[ParallelGroup], path: str | Path) -> int:
    """Write groups as JSONL atomically (temp file + rename: a failure leaves an earlier file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_open(path) as f:
        for g in groups:
            f.write(json.dumps(g.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n
