"""MIRACL evaluation: real topics/qrels, a user-supplied passage corpus, nDCG@10 and Recall@100.

As in the MIRACL paper (and pyserini's `trec_eval -c -m ndcg_cut.10 / recall.100` on top-100 runs):
every judged query counts; one with no relevant judgement would score 0 and is reported (the v1.0
dev/train files have none). Passages are encoded as `title text`. If the supplied corpus lacks
some judged passages (e.g. a shard), they count as not retrieved and their number is reported.
MAP and MRR@10 are reported too (same run), for comparison with the BEIR numbers.
"""

from __future__ import annotations

from pathlib import Path

from polyret.data.beir import passage_text
from polyret.data.miracl import (
    check_lang,
    corpus_files,
    corpus_needed_message,
    default_files,
    iter_corpus,
    read_topics,
    read_trec_qrels,
)
from polyret.encode import ENCODE_BATCH_SIZE
from polyret.errors import PolyretError
from polyret.evaluate.result import EvalResult
from polyret.evaluate.retrieval import Encoders, RetrievalTask, model_encoders, run_retrieval
from polyret.correction import streaming_correction
from polyret.search import SearchOptions


def miracl_task(
    lang: str,
    corpus: str | Path | None,
    *,
    split: str = "dev",
    topics: str | Path | None = None,
    qrels: str | Path | None = None,
) -> RetrievalTask:
    check_lang(lang)
    if corpus is None:
        raise PolyretError(corpus_needed_message(lang))
    corpus = Path(corpus)
    if not corpus.exists():
        raise PolyretError(f"MIRACL corpus {corpus} does not exist; {corpus_needed_message(lang)}")
    corpus_files(corpus)  # a directory must hold shards
    if topics is None or qrels is None:
        default_topics, default_qrels = default_files(lang, split)
        topics, qrels = topics or default_topics, qrels or default_qrels
    queries = read_topics(Path(topics))
    judgements = read_trec_qrels(Path(qrels))
    unknown = [q for q in judgements if q not in queries]
    if unknown:
        raise PolyretError(f"{qrels} judges {len(unknown)} query id(s) absent from {topics}, e.g. {unknown[0]!r}")
    judged = {q: t for q, t in queries.items() if q in judgements}
    if not judged:
        raise PolyretError(f"no query in {topics} is judged in {qrels}")

    def docs():
        return ((d.id, passage_text(d.title, d.text)) for d in iter_corpus(corpus))

    return RetrievalTask(
        name="miracl",
        queries=judged,
        qrels=judgements,
        docs=docs,
        query_langs={q: lang for q in judged},
        doc_lang=lang,
        source={
            "lang": lang,
            "split": split,
            "topics": str(topics),
            "qrels": str(qrels),
            "corpus": str(corpus),
            "n_topics_unjudged": len(queries) - len(judged),
        },
    )


def evaluate_miracl(
    model,
    data: str | Path | None = None,
    lang: str | None = None,
    *,
    corpus: str | Path | None = None,
    split: str = "dev",
    topics: str | Path | None = None,
    qrels: str | Path | None = None,
    out_dir: str | Path | None = None,
    index: str = "flat",
    batch_size: int = ENCODE_BATCH_SIZE,
    max_length: int | None = None,
    bf16: bool | None = None,
    chunk_size: int = 4096,
    search_options: SearchOptions | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    encoders: Encoders | None = None,
    language_correction="auto",
) -> EvalResult:
    """nDCG@10 and Recall@100 (plus MRR@10, MAP@100) of `model` on MIRACL `lang`/`split`.

    `data`: the passage corpus (the per-language JSONL from the miracl/miracl-corpus data set, or a
    folder of its shards; polyret never downloads it); `lang`: the MIRACL language. The older call
    `evaluate_miracl(model, lang, corpus=...)` still works. `topics`/`qrels` default to the v1.0
    files in the data directory.
    """
    data, lang = _data_and_lang(data, lang, corpus)
    correction, correction_info = streaming_correction(language_correction, None if encoders else model)
    task = miracl_task(lang, data, split=split, topics=topics, qrels=qrels)
    enc = encoders or model_encoders(
        model, batch_size=batch_size, max_length=max_length, bf16=bf16, show_progress=show_progress
    )
    return run_retrieval(
        task,
        enc,
        out_dir=out_dir,
        index=index,
        k=100,
        map_depth=100,
        search_options=search_options,
        chunk_size=chunk_size,
        overwrite=overwrite,
        show_progress=show_progress,
        correction=correction,
        correction_info=correction_info,
    )


def _data_and_lang(data, lang, corpus) -> tuple[str | Path | None, str]:
    """(corpus, language) from today's `(model, corpus, lang)` or the older `(model, lang, corpus=...)`."""
    if corpus is not None:
        if lang is not None and data is not None:
            raise TypeError("evaluate_miracl(): give the corpus once (as `data`), not also as corpus=")
        data, lang = (corpus, data) if lang is None else (corpus, lang)
    if lang is None:
        raise TypeError("evaluate_miracl(): missing the MIRACL language (lang=)")
    return data, lang
