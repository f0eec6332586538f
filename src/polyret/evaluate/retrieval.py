"""Shared engine of the BEIR and MIRACL evaluations: stream-encode the corpus, search, score with trec_eval.

Metrics come from `pytrec_eval` (trec_eval's own code), the scorer behind BEIR, MIRACL and pyserini:

- `ndcg@10` = trec_eval `ndcg_cut.10` (linear gains, graded qrels),
- `recall@100` = `recall.100`,
- `mrr@10` = `recip_rank` on each query's first 10 results,
- `map@D` = `map` on the top-D run (D = `map_depth`, default 1000, BEIR's depth); with
  `map_depth=None` it is `map` over the *full* ranking of the corpus (what LAReQA's mAP is), computed
  exactly without ranking every document: average precision only depends on the documents ranked
  at or above the lowest-ranked relevant one, so each query's run holds every document scoring at
  least that relevant document's score (minus a margin), and trec_eval does the rest.

Ranking order: score descending, ties broken by corpus order (the earlier document first, what a
stable sort gives; LAReQA's evaluator uses the same rule, so exported LAReQA data scores identically).
trec_eval itself would break ties by document id, so pytrec_eval is handed each query's ranking as
rank-derived scores (n, n-1, ..., 1): it evaluates exactly the ranking polyret produced, while
run.trec keeps the real scores. Averages follow
`trec_eval -c` (as pyserini's MIRACL evaluation runs it): every judged query counts, a query with no
results or no relevant judgement contributes 0; the number of queries without a relevant judgement
is reported (and warned about) so such zeros are never silent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from polyret.correction import infer_languages
from polyret.data.beir import Qrels
from polyret.encode import ENCODE_BATCH_SIZE, encode_texts, model_id
from polyret.errors import PolyretError
from polyret.evaluate.result import PER_QUERY_FILE, REPORT_FILE, EvalResult, PerQuery
from polyret.io import OutputDir, output_dir
from polyret.trec import write_trec_run
from polyret.evaluate.retrieval_report import plot_retrieval_bars, retrieval_markdown
from polyret.runtime import console, describe, is_main_process, precision_for, world_size
from polyret.shard import encode_corpus_sharded
from polyret.search import SearchOptions, search
from polyret.stream import EmbeddingStore, store_is_complete

RESULTS_FILE = "results.json"
RUN_FILE = "run.trec"
EMB_DIR = "corpus-embeddings"
# Full-ranking MAP collects, per query, all documents down to its worst-ranked relevant one. With a
# weak model on a large corpus that is most of the corpus per query; refuse rather than swap.
MAX_FULL_RANKING_ENTRIES = 30_000_000
# Documents this far below a query's lowest relevant score are kept too: harmless for AP (they rank
# below it) and it absorbs float rounding differences between two ways of computing the same dot.
FULL_RANKING_MARGIN = 1e-3


def map_key(map_depth: int | None) -> str:
    return "map" if map_depth is None else f"map@{map_depth}"


def metric_keys(map_depth: int | None) -> tuple[str, ...]:
    return ("ndcg@10", "recall@100", "mrr@10", map_key(map_depth))


Ranking = list[tuple[str, float]]
"""(doc id, score) pairs, best first: the order *is* the ranking (ties already broken)."""
Run = dict[str, Ranking]


def rank_rows(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Order of (row, score) pairs: score descending, ties by row ascending; rows < 0 (padding) dropped."""
    keep = np.flatnonzero(rows >= 0)
    return keep[np.lexsort((rows[keep], -scores[keep].astype(np.float64)))]


def _for_trec_eval(run: Run, depth: int | None = None) -> dict[str, dict[str, float]]:
    """Rankings as trec_eval input whose order cannot be changed by its tie-breaking: score = n - position."""
    out = {}
    for q, ranking in run.items():
        docs = ranking[:depth] if depth else ranking
        if docs:
            out[q] = {d: float(len(docs) - i) for i, (d, _) in enumerate(docs)}
    return out


def per_query_metrics(
    qrels: Qrels, run: Run, *, map_run: Run | None = None, map_name: str = "map@1000"
) -> dict[str, dict[str, float]]:
    """{qid: {ndcg@10, recall@100, mrr@10, <map_name>}} for every query in `qrels`, via pytrec_eval.

    Rankings are evaluated in the given order. `map_run` (default: `run`) is the run average
    precision is computed on, so MAP can use a deeper ranking than the other metrics. Queries
    missing from a run score 0 (trec_eval -c).
    """
    import pytrec_eval

    out = {q: {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, map_name: 0.0} for q in qrels}
    run = {q: r for q, r in run.items() if q in qrels}
    trec_run = _for_trec_eval(run)
    if trec_run:
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
        for q, m in ev.evaluate(trec_run).items():
            out[q]["ndcg@10"] = m["ndcg_cut_10"]
            out[q]["recall@100"] = m["recall_100"]
        for q, m in pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(_for_trec_eval(run, 10)).items():
            out[q]["mrr@10"] = m["recip_rank"]
    trec_map_run = trec_run if map_run is None else _for_trec_eval({q: r for q, r in map_run.items() if q in qrels})
    if trec_map_run:
        for q, m in pytrec_eval.RelevanceEvaluator(qrels, {"map"}).evaluate(trec_map_run).items():
            out[q][map_name] = m["map"]
    return out


def mean_metrics(per_query: dict[str, dict[str, float]], qids: Iterable[str] | None = None) -> dict[str, float]:
    qids = list(per_query if qids is None else qids)
    if not qids:
        return {}
    keys = per_query[qids[0]].keys()
    return {k: float(np.mean([per_query[q][k] for q in qids])) for k in keys}


def full_ranking_run(
    query_vecs: np.ndarray,
    store: EmbeddingStore,
    relevant_rows: list[np.ndarray],
    *,
    query_block: int = 256,
    corpus_block: int = 16_384,
    max_entries: int = MAX_FULL_RANKING_ENTRIES,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, (rows, scores) of every document scoring >= its lowest relevant score - margin.

    That set decides average precision over the full ranking exactly (see the module docstring).
    Scores are float32 dot products computed block by block (numpy matmul), and never form the
    query x corpus matrix. A query with no relevant document in the corpus gets an empty list.
    """
    nq = query_vecs.shape[0]
    q = np.ascontiguousarray(query_vecs, dtype=np.float32)
    thresholds = np.full(nq, np.inf, dtype=np.float32)
    for i, rows in enumerate(relevant_rows):
        if len(rows):
            thresholds[i] = float((store.rows(rows) @ q[i]).min()) - FULL_RANKING_MARGIN
    found_rows: list[list[np.ndarray]] = [[] for _ in range(nq)]
    found_scores: list[list[np.ndarray]] = [[] for _ in range(nq)]
    total = 0
    for c_start, block in store.iter_blocks(corpus_block):
        for q_start in range(0, nq, query_block):
            scores = q[q_start : q_start + query_block] @ block.T
            qi, cj = np.nonzero(scores >= thresholds[q_start : q_start + query_block, None])
            if not len(qi):
                continue
            total += len(qi)
            if total > max_entries:
                raise PolyretError(
                    f"full-ranking MAP would keep more than {max_entries:,} (query, document) pairs for this "
                    "model and corpus; use a finite MAP depth (--map-depth 1000)"
                )
            bounds = np.flatnonzero(np.diff(qi)) + 1  # np.nonzero is row-major: qi is sorted
            for part_q, part_c in zip(np.split(qi, bounds), np.split(cj, bounds)):
                row = q_start + int(part_q[0])
                found_rows[row].append(part_c + c_start)
                found_scores[row].append(scores[part_q, part_c])
    return [
        (np.concatenate(r) if r else np.zeros(0, np.int64), np.concatenate(s) if s else np.zeros(0, np.float32))
        for r, s in zip(found_rows, found_scores)
    ]


@dataclass
class RetrievalTask:
    """What to evaluate: judged queries, their qrels, and a re-iterable corpus of (doc id, passage text)."""

    name: str
    queries: dict[str, str]
    qrels: Qrels
    docs: Callable[[], Iterable[tuple[str, str]]]
    query_langs: dict[str, str | None] = field(default_factory=dict)
    doc_lang: str | None = None  # every document's language when the corpus is monolingual (MIRACL)
    source: dict[str, Any] = field(default_factory=dict)  # paths etc., copied into results.json


@dataclass
class Encoders:
    """How texts become vectors; `identity` must change whenever the vectors would (resume safety)."""

    queries: Callable[[list[str]], np.ndarray]
    passages: Callable[[list[str]], np.ndarray]
    identity: str
    name: str
    runtime: dict[str, Any] = field(default_factory=dict)  # device / precision, copied into results.json


def model_encoders(
    model,
    *,
    batch_size: int = ENCODE_BATCH_SIZE,
    max_length: int | None = None,
    bf16: bool | None = None,
    cache: bool | str | Path = False,
    show_progress: bool = True,
) -> Encoders:
    """Encoders over `polyret.encode.encode_texts` with the model's query / passage prompts."""
    precision = precision_for(str(model.device), "auto" if bf16 is None else bf16)
    mid = model_id(model)

    def make(kind: str, progress: bool):
        return lambda texts: encode_texts(
            model,
            texts,
            kind,
            batch_size=batch_size,
            bf16=precision,
            max_length=max_length,
            show_progress=progress,
            cache=cache,
        )

    # bf16=True/False keeps the identities (and corpus stores) of CPU runs made before fp16 existed.
    numerics = f"bf16={precision == 'bf16'}" if precision != "fp16" else "precision=fp16"
    identity = f"{mid}|max_length={max_length or model.max_seq_length}|{numerics}"
    return Encoders(
        make("query", show_progress), make("passage", False), identity, mid, describe(str(model.device), precision)
    )


def corrected_encoders(encoders: Encoders, correction, *, doc_lang: str | None = None) -> Encoders:
    """Encoders whose passages come out language-corrected (`polyret.correction`).

    A streamed corpus carries no language per text here, so a passage's language is `doc_lang` when
    the corpus is monolingual, else the nearest language mean (`infer_languages`). The store's
    identity names the correction, so corrected and uncorrected vectors are never mixed on resume.
    """

    def passages(texts: list[str]) -> np.ndarray:
        emb = encoders.passages(texts)
        langs = doc_lang or infer_languages(emb, correction, "passage")
        return correction.apply(emb, langs, "passage")

    return Encoders(
        encoders.queries,
        passages,
        f"{encoders.identity}|correction={correction.fingerprint()}",
        encoders.name,
        encoders.runtime,
    )


def correct_queries(q_vecs: np.ndarray, qids: list[str], task: "RetrievalTask", correction) -> tuple[np.ndarray, str]:
    """Queries corrected in their metadata language, inferred where the task has none."""
    langs = [task.query_langs.get(q) for q in qids]
    if all(langs):
        return correction.apply(q_vecs, langs, "query"), "metadata"
    guessed = infer_languages(q_vecs, correction, "query")
    langs = [l or g for l, g in zip(langs, guessed)]
    return correction.apply(q_vecs, langs, "query"), "inferred where missing"


def run_retrieval(
    task: RetrievalTask,
    encoders: Encoders,
    *,
    out_dir: str | Path | OutputDir | None = None,
    index: str = "flat",
    k: int = 100,
    map_depth: int | None = 1000,
    search_options: SearchOptions | None = None,
    chunk_size: int = 4096,
    overwrite: bool = False,
    show_progress: bool = True,
    correction=None,
    correction_info: dict | None = None,
) -> EvalResult | None:
    """Encode (resumably), search, score; write results.json, report.md, per_query.npz, run.trec, PNG.

    `correction` (a `LanguageCorrection`) is applied to passages as they are encoded and to the
    queries; `correction_info` (how it was chosen) goes to results.json.

    Under torchrun every rank encodes its chunks of the corpus (polyret.shard) into the shared
    store; rank 0 then searches, scores and writes alone, the other ranks return None."""
    if k < 100:
        raise PolyretError(f"the run depth k must be at least 100 (Recall@100 needs it), got {k}")
    if map_depth is not None and map_depth < 1:
        raise PolyretError(f"MAP depth must be positive or 'all', got {map_depth}")
    t_start = time.perf_counter()
    out, work, tmp = _open_work_dir(task, out_dir, overwrite)
    if correction is not None:
        encoders = corrected_encoders(encoders, correction, doc_lang=task.doc_lang)
    try:
        timing: dict[str, float] = {}
        store = _encode_corpus(task, encoders, work, chunk_size, show_progress, timing)
        if not is_main_process():
            return None
        qids = list(task.queries)
        q_vecs, correction_info = _encode_queries(task, encoders, qids, store.dim, correction, correction_info, timing)
        t = time.perf_counter()
        found = search(q_vecs, store, max(k, map_depth or 0), index=index, options=search_options)
        timing["search_s"] = time.perf_counter() - t
        judged = _judged(task, qids, store)
        for w in judged.warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
        run = _run_of(found, store, qids)
        per_query = _score(task, qids, run, q_vecs, store, judged, k=k, map_depth=map_depth, timing=timing)
        timing["total_s"] = time.perf_counter() - t_start
        results = _results(
            task,
            encoders,
            store,
            qids,
            per_query,
            judged,
            k=k,
            map_depth=map_depth,
            search_info=found.info,
            correction_info=correction_info,
            timing=timing,
        )
        result = retrieval_result(results, per_query)
        if out_dir is not None:
            _write_outputs(work, result, {q: r[:k] for q, r in run.items()})
        if out is not None:
            out.__exit__(None, None, None)
        return result
    except BaseException as e:
        if out is not None:
            out.__exit__(type(e), e, e.__traceback__)
        raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _open_work_dir(task: RetrievalTask, out_dir, overwrite: bool) -> tuple[OutputDir | None, Path, str | None]:
    """(the output folder or None, the folder to work in, a temp folder to remove at the end or None).

    An interrupted run of this kind in out_dir is continued in place (the corpus store resumes);
    --overwrite works in a sibling folder swapped in at the end (polyret.io's policy)."""
    out = output_dir(out_dir, f"eval-{task.name}", overwrite=overwrite, legacy_files=(RESULTS_FILE, EMB_DIR))
    sharded = world_size() > 1
    if sharded and out is None:
        raise PolyretError("under torchrun the corpus shards need a shared output folder: give --out")
    if sharded and out.fresh:
        raise PolyretError(
            f"--overwrite does not combine with torchrun (each process would start its own fresh "
            f"folder): remove {out.final} or choose another --out"
        )
    if out is None:
        tmp = tempfile.mkdtemp(prefix="polyret-retrieval-")
        return None, Path(tmp), tmp
    if sharded and not is_main_process():
        return None, out.final, None  # rank 0 owns the folder and its markers; this rank only writes its shard
    work = out.__enter__().path
    old_store = out.final / EMB_DIR
    if work != out.final and store_is_complete(old_store):
        # --overwrite rebuilds the output in a sibling folder; the finished corpus vectors it
        # replaces are hard-linked in (read-only from here on: encode_corpus reuses them when corpus
        # and encoder are unchanged, it checks both, and unlinks them otherwise), so rescoring with
        # another index costs no encoding and a failed run leaves the old output as it was.
        shutil.copytree(old_store, work / EMB_DIR, copy_function=os.link)
    return out, work, None


def _encode_corpus(
    task: RetrievalTask, encoders: Encoders, work: Path, chunk_size: int, show_progress: bool, timing: dict[str, float]
) -> EmbeddingStore:
    """The corpus store; under torchrun encoded in shards by every rank (polyret.shard)."""
    t = time.perf_counter()
    store = encode_corpus_sharded(
        task.docs,
        work / EMB_DIR,
        encoders.passages,
        identity=encoders.identity + "|passage",
        chunk_size=chunk_size,
        overwrite=False,
        show_progress=show_progress,
        description=f"{task.name}: encoding corpus",
    )
    timing["encode_corpus_s"] = time.perf_counter() - t
    return store


def _encode_queries(
    task: RetrievalTask,
    encoders: Encoders,
    qids: list[str],
    dim: int,
    correction,
    correction_info: dict | None,
    timing: dict[str, float],
) -> tuple[np.ndarray, dict]:
    """Query vectors (language-corrected when a correction is given) and the correction's record."""
    t = time.perf_counter()
    q_vecs = np.asarray(encoders.queries([task.queries[q] for q in qids]), dtype=np.float32)
    timing["encode_queries_s"] = time.perf_counter() - t
    if q_vecs.shape != (len(qids), dim):
        raise PolyretError(f"query encoder returned shape {q_vecs.shape}, expected {(len(qids), dim)}")
    info = dict(correction_info or {"method": "none"})
    if correction is not None:
        q_vecs, info["query_languages"] = correct_queries(q_vecs, qids, task, correction)
        info["passage_languages"] = task.doc_lang or "inferred (nearest language mean)"
    return q_vecs, info


@dataclass
class _Judged:
    """Each query's judged-relevant documents, their corpus rows, and what is wrong with the judgements."""

    relevant: dict[str, list[str]]
    row_of: dict[str, int]
    n_relevant: int
    n_missing: int
    no_relevant: list[str]
    warnings: list[str]


def _judged(task: RetrievalTask, qids: list[str], store: EmbeddingStore) -> _Judged:
    # Judged documents absent from the corpus (a partial corpus) cannot be retrieved: count them.
    relevant = {q: [d for d, r in task.qrels[q].items() if r > 0] for q in qids}
    row_of = store.index_of({d for ds in relevant.values() for d in ds})
    n_rel = sum(len(ds) for ds in relevant.values())
    n_missing = sum(1 for ds in relevant.values() for d in ds if d not in row_of)
    no_rel = [q for q in qids if not relevant[q]]
    warnings = []
    if n_missing:
        warnings.append(
            f"{n_missing} of {n_rel} judged-relevant documents are not in the corpus (they count as not retrieved)"
        )
    if no_rel:
        warnings.append(
            f"{len(no_rel)} queries have no relevant judgement; they score 0 (trec_eval -c), e.g. {no_rel[0]!r}"
        )
    return _Judged(relevant, row_of, n_rel, n_missing, no_rel, warnings)


def _run_of(found, store: EmbeddingStore, qids: list[str]) -> Run:
    """The search result as rankings of document ids (ties: the earlier corpus row first)."""
    docid_of = store.lookup_ids(np.unique(found.indices))
    run: Run = {}
    for i, qid in enumerate(qids):
        rows, scores = found.indices[i], found.scores[i]
        run[qid] = [(docid_of[int(rows[j])], float(scores[j])) for j in rank_rows(rows, scores)]
    return run


def _score(
    task: RetrievalTask,
    qids: list[str],
    run: Run,
    q_vecs: np.ndarray,
    store: EmbeddingStore,
    judged: _Judged,
    *,
    k: int,
    map_depth: int | None,
    timing: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Per-query metrics of the top-k run; MAP on the top-`map_depth` run, or the full ranking (None)."""
    if map_depth is None:
        t = time.perf_counter()
        rel_rows = [
            np.array(sorted(judged.row_of[d] for d in judged.relevant[q] if d in judged.row_of), dtype=np.int64)
            for q in qids
        ]
        full = full_ranking_run(q_vecs, store, rel_rows)
        docid_full = store.lookup_ids(np.unique(np.concatenate([r for r, _ in full] + [np.zeros(0, np.int64)])))
        map_run = {
            qid: [(docid_full[int(rows[j])], float(scores[j])) for j in rank_rows(rows, scores)]
            for qid, (rows, scores) in zip(qids, full)
        }
        timing["full_ranking_s"] = time.perf_counter() - t
    else:
        map_run = {qid: r[:map_depth] for qid, r in run.items()}
    qrels = {q: task.qrels[q] for q in qids}
    return per_query_metrics(qrels, {q: r[:k] for q, r in run.items()}, map_run=map_run, map_name=map_key(map_depth))


def _results(
    task: RetrievalTask,
    encoders: Encoders,
    store: EmbeddingStore,
    qids: list[str],
    per_query: dict[str, dict[str, float]],
    judged: _Judged,
    *,
    k: int,
    map_depth: int | None,
    search_info: dict,
    correction_info: dict,
    timing: dict[str, float],
) -> dict[str, Any]:
    """The results dict (results.json): means over all judged queries and per query language."""
    langs = {q: task.query_langs.get(q) for q in qids}
    per_language = {}
    for lang in sorted({l for l in langs.values() if l}):
        ql = [q for q in qids if langs[q] == lang]
        per_language[lang] = mean_metrics(per_query, ql) | {"n_queries": len(ql)}
    return {
        "task": task.name,
        "model": encoders.name,
        "encoder_identity": encoders.identity,
        **task.source,
        "n_queries": len(qids),
        "n_docs": store.n,
        "n_relevant_judgements": judged.n_relevant,
        "n_relevant_missing_from_corpus": judged.n_missing,
        "n_queries_without_relevant": len(judged.no_relevant),
        "metrics": mean_metrics(per_query),
        "per_language": per_language,
        "query_languages": {q: l for q, l in langs.items() if l},
        "run_depth": k,
        "map_depth": "all" if map_depth is None else map_depth,
        "search": search_info,
        "language_correction": correction_info,
        "timing": timing,
        "runtime": encoders.runtime,
        "warnings": judged.warnings,
        "scorer": "pytrec_eval on polyret's rankings (trec_eval -c averaging; ties: earlier corpus document first)",
    }


def _write_outputs(work: Path, result: EvalResult, run: Run) -> None:
    """run.trec and the plot, then the common layout (results.json last: it marks the folder complete)."""
    results = result.raw
    write_trec_run(work / RUN_FILE, run)
    results["files"] = {
        "run": RUN_FILE,
        "per_query": PER_QUERY_FILE,
        "embeddings": EMB_DIR,
        "report": REPORT_FILE,
        "plot": f"{results['task']}_bars.png",
    }
    plot_retrieval_bars(results, work / f"{results['task']}_bars.png")
    result.save(work)


def retrieval_result(
    results: dict[str, Any], per_query: dict[str, dict[str, float]], *, report: bool = True
) -> EvalResult:
    """Flat metrics (plain means over judged queries, per language as `metric[lang]`) and each
    query's values (one group: the headline is an unweighted mean)."""
    flat = {k: float(v) for k, v in results["metrics"].items()}
    headline = list(flat)
    for lang, block in results["per_language"].items():
        flat |= {f"{k}[{lang}]": float(block[k]) for k in headline}
    qids = list(per_query)
    pq = {m: PerQuery.build(qids, [per_query[q][m] for q in qids], np.full((len(qids), 1), "all")) for m in headline}
    per_language = {m: [m] for m in headline} if results["per_language"] else {}
    return EvalResult(
        results["task"], flat, headline, per_language, pq, results, retrieval_markdown(results) if report else ""
    )
