"""BEIR evaluation: any data set in the BEIR layout, with nDCG@10, Recall@100, MRR@10 and MAP.

The engine (streaming corpus encode, FAISS search, pytrec_eval scoring, outputs) lives in
`polyret.evaluate.retrieval`; this module only turns a BEIR directory into a `RetrievalTask`.
"""

from __future__ import annotations

from pathlib import Path

from polyret.data.beir import iter_corpus, load_beir, passage_text
from polyret.encode import ENCODE_BATCH_SIZE
from polyret.evaluate.result import EvalResult
from polyret.evaluate.retrieval import Encoders, RetrievalTask, model_encoders, run_retrieval
from polyret.correction import streaming_correction
from polyret.search import SearchOptions


def beir_task(beir_dir: str | Path, split: str = "test") -> RetrievalTask:
    data = load_beir(Path(beir_dir), split)

    def docs():
        return ((d.id, passage_text(d.title, d.text)) for d in iter_corpus(data.corpus_path))

    return RetrievalTask(
        name="beir",
        queries={q.id: q.text for q in data.queries.values()},
        qrels=data.qrels,
        docs=docs,
        query_langs={q.id: q.lang for q in data.queries.values()},
        source={"data": str(data.root), "split": split},
    )


def evaluate_beir(
    model,
    beir_dir: str | Path,
    *,
    split: str = "test",
    out_dir: str | Path | None = None,
    index: str = "flat",
    k: int = 100,
    map_depth: int | None = 1000,
    batch_size: int = ENCODE_BATCH_SIZE,
    max_length: int | None = None,
    bf16: bool | None = None,
    cache: bool | str | Path = False,
    chunk_size: int = 4096,
    search_options: SearchOptions | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    encoders: Encoders | None = None,
    language_correction="auto",
) -> EvalResult:
    """Evaluate `model` on the BEIR directory `beir_dir` (its `qrels/<split>.tsv`).

    Metrics: `ndcg@10`, `recall@100`, `mrr@10` on the top-`k` run, and `map@<map_depth>`
    (`map_depth=None`: `map` over the full ranking). Corpus embeddings go to
    `out_dir/corpus-embeddings` and a rerun after an interruption resumes them. `encoders`
    replaces the model's encoders (tests, precomputed vectors); `model` is then ignored.
    """
    correction, correction_info = streaming_correction(language_correction, None if encoders else model)
    task = beir_task(beir_dir, split)
    enc = encoders or model_encoders(
        model, batch_size=batch_size, max_length=max_length, bf16=bf16, cache=cache, show_progress=show_progress
    )
    return run_retrieval(
        task,
        enc,
        out_dir=out_dir,
        index=index,
        k=k,
        map_depth=map_depth,
        search_options=search_options,
        chunk_size=chunk_size,
        overwrite=overwrite,
        show_progress=show_progress,
        correction=correction,
        correction_info=correction_info,
    )
