"""TREC run and qrels files: `qid Q0 docid rank score tag` runs and `qid 0 docid rel` qrels, written
atomically through `polyret.io` and read with one clear error per bad line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from polyret.errors import PolyretError
from polyret.io import Qrels, Run, atomic_open, open_text


def _check_trec_id(x: str, what: str) -> str:
    if not x or any(ch.isspace() for ch in x):
        raise PolyretError(f"{what} id {x!r} cannot be written to a TREC file (empty or contains whitespace)")
    return x


def run_from_arrays(query_ids: Sequence[str], doc_ids: Sequence[str], top_idx, top_scores) -> Run:
    """Per-query arrays of document indices (best first) -> a run; negative indices (no result) dropped."""
    import numpy as np

    run: Run = {}
    for q, idx_row, sc_row in zip(query_ids, np.asarray(top_idx).tolist(), np.asarray(top_scores).tolist()):
        run[q] = [(doc_ids[d], float(s)) for d, s in zip(idx_row, sc_row) if d >= 0]
    return run


def write_trec_run(path: str | Path, run: Mapping[str, Sequence[tuple[str, float]]], tag: str = "polyret") -> Path:
    """TREC run `qid Q0 docid rank score tag`, each query's list in the order given (best first)."""
    path = Path(path)
    with atomic_open(path) as f:
        for qid, docs in run.items():
            _check_trec_id(qid, "query")
            f.write(
                "".join(
                    f"{qid} Q0 {_check_trec_id(d, 'document')} {rank} {score:.6f} {tag}\n"
                    for rank, (d, score) in enumerate(docs, 1)
                )
            )
    return path


def write_trec_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """TREC qrels `qid 0 docid relevance`."""
    path = Path(path)
    with atomic_open(path) as f:
        for q, docs in qrels.items():
            _check_trec_id(q, "query")
            f.write("".join(f"{q} 0 {_check_trec_id(d, 'document')} {int(rel)}\n" for d, rel in docs.items()))
    return path


def read_trec_run(path: str | Path) -> Run:
    """TREC run `qid Q0 docid rank score tag` -> {qid: [(docid, score), ...]} best first (by score,
    ties by the file's rank column)."""
    path = Path(path)
    rows: dict[str, list[tuple[int, str, float]]] = {}
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise PolyretError(
                    f"{path} line {lineno} has {len(parts)} columns, expected 6 (qid Q0 docid rank score tag)"
                )
            qid, _, docid, rank, score, _ = parts
            try:
                rows.setdefault(qid, []).append((int(rank), docid, float(score)))
            except ValueError:
                raise PolyretError(f"{path} line {lineno}: rank {rank!r} or score {score!r} is not a number") from None
    if not rows:
        raise PolyretError(f"{path} holds no ranked documents")
    return {q: [(d, s) for _, d, s in sorted(r, key=lambda x: (-x[2], x[0]))] for q, r in rows.items()}


def read_trec_qrels(path: str | Path) -> Qrels:
    """TREC qrels `qid Q0 docid rel` (whitespace separated) -> {qid: {docid: rel}}."""
    path = Path(path)
    qrels: Qrels = {}
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 4:
                raise PolyretError(f"{path} line {lineno} has {len(parts)} columns, expected 4 (qid Q0 docid rel)")
            qid, _, docid, rel = parts
            try:
                qrels.setdefault(qid, {})[docid] = int(rel)
            except ValueError:
                raise PolyretError(f"{path} line {lineno}: relevance {rel!r} is not an integer") from None
    if not qrels:
        raise PolyretError(f"{path} holds no judgements")
    return qrels
