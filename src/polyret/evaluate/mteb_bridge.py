"""polyret data and results in MTEB's terms (mteb 2.x; tested with 2.26.24).

- `xquad_retrieval_task(data_dir)`: a local copy of MTEB's `XQuADRetrieval` definition fed from the
  XQuAD-R files in the data directory (MTEB's own data set lives on a model hub that is not
  reachable here): one subset per language, queries = that language's questions, corpus = its
  paragraphs (contexts), one relevant paragraph per question, main score nDCG@10, split
  `validation`. `mteb.evaluate(model, tasks=[task])` then runs mteb's own retrieval evaluation.
- `xquad_ndcg10(...)`: polyret's own computation of the same number (exact inner-product ranking,
  nDCG@10 with the one relevant paragraph), so the two can be checked against each other.
- `lareqa_task_result(results)`: polyret's LAReQA results as an MTEB `TaskResult` (one subset per
  question language, main score Multi mAP), written with `TaskResult.to_disk`, so they sit beside
  MTEB result files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyret.correction import infer_languages, resolve_correction
from polyret.data.lareqa import LareqaDataset, first_paragraphs, load_lareqa
from polyret.encode import encode_texts

# ISO 639-1 -> MTEB's language-script codes (those of XQuADRetrieval plus the XQuAD-R/MLQA-R ones).
MTEB_LANGS = {
    "ar": "arb-Arab",
    "de": "deu-Latn",
    "el": "ell-Grek",
    "en": "eng-Latn",
    "es": "spa-Latn",
    "hi": "hin-Deva",
    "ro": "ron-Latn",
    "ru": "rus-Cyrl",
    "th": "tha-Thai",
    "tr": "tur-Latn",
    "vi": "vie-Latn",
    "zh": "zho-Hans",
}
SPLIT = "validation"


def xquad_subsets(dataset: LareqaDataset) -> dict[str, dict[str, Any]]:
    """lang -> {"queries": {qid: text}, "corpus": {pid: context}, "qrels": {qid: {pid: 1}}}.

    Paragraph texts are stripped of surrounding whitespace because mteb strips every document text
    before encoding it (`mteb._create_dataloaders._corpus_to_dict`), and XQuAD-R contexts often end
    in a space: a trailing space is one more token for e5's tokenizer, which moves a paragraph's
    embedding (cosine .9988 for one Russian paragraph) enough to swap near-tied paragraphs. Stripped
    here, both sides encode the same strings. mteb does not strip queries, so they stay as they are."""
    out: dict[str, dict[str, Any]] = {}
    for lang in dataset.languages:
        out[lang] = {"queries": {}, "corpus": {}, "qrels": {}}
    for c in dataset.candidates:
        out[c.lang]["corpus"].setdefault(f"{c.lang}/{c.paragraph_id}", c.context.strip())
    for q, rel in zip(dataset.questions, dataset.relevant):
        own = [dataset.candidates[i] for i in rel.tolist() if dataset.candidates[i].lang == q.lang]
        if not own:
            continue  # no answer in its own language: not part of the monolingual task
        out[q.lang]["queries"][q.key] = q.text
        out[q.lang]["qrels"][q.key] = {f"{q.lang}/{own[0].paragraph_id}": 1}
    return out


def _metadata(name: str, langs: Sequence[str], description: str, main_score: str, split: str):
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=name,
        dataset={"path": f"local/{name}", "revision": "local"},
        description=description,
        reference="https://github.com/google-research-datasets/lareqa",
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs={l: [MTEB_LANGS.get(l, l)] for l in langs},
        main_score=main_score,
        date=("2019-05-21", "2019-11-21"),
        domains=["Web", "Written"],
        task_subtypes=["Question answering"],
        license="cc-by-sa-4.0",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="created",
        bibtex_citation="",
    )


def xquad_retrieval_task(
    data_dir: str | Path, langs: Sequence[str] | None = None, *, max_paragraphs: int | None = None
):
    """An MTEB retrieval task (XQuADRetrieval's definition) over local XQuAD-R files."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    dataset = load_lareqa(data_dir, langs=langs)
    if max_paragraphs:
        dataset = first_paragraphs(dataset, max_paragraphs)
    subsets = xquad_subsets(dataset)

    class LocalXQuADRetrieval(AbsTaskRetrieval):
        metadata = _metadata(
            "PolyretXQuADRetrieval",
            list(subsets),
            "XQuADRetrieval's definition (question -> its paragraph, per language) on local XQuAD-R files.",
            "ndcg_at_10",
            SPLIT,
        )

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {
                lang: {
                    SPLIT: {
                        "queries": Dataset.from_dict({"id": list(s["queries"]), "text": list(s["queries"].values())}),
                        "corpus": Dataset.from_dict({"id": list(s["corpus"]), "text": list(s["corpus"].values())}),
                        "relevant_docs": s["qrels"],
                        "top_ranked": None,
                    }
                }
                for lang, s in subsets.items()
            }
            self.data_loaded = True

    task = LocalXQuADRetrieval()
    task.polyret_dataset = dataset
    return task


def ndcg_at_10(scores: np.ndarray, relevant_col: np.ndarray, doc_ids: Sequence[str] | None = None) -> np.ndarray:
    """Per query nDCG@10 with one relevant document (gain 1): 1/log2(1 + rank) if rank <= 10.

    rank = 1 + number of documents scoring strictly higher, plus, with `doc_ids`, the documents that
    tie with the relevant one and whose id sorts after its id: pytrec_eval's (trec_eval's) rule, which
    mteb uses, ranks equal scores by document id descending. Without `doc_ids` a tie counts in the
    query's favour."""
    rel_scores = scores[np.arange(len(scores)), relevant_col]
    rank = 1 + (scores > rel_scores[:, None]).sum(1)
    if doc_ids is not None:
        id_order = np.argsort(np.argsort(np.array(list(doc_ids), dtype=object)))  # position of each id in sorted order
        tied_after = (scores == rel_scores[:, None]) & (id_order[None, :] > id_order[relevant_col][:, None])
        rank = rank + tied_after.sum(1)
    return np.where(rank <= 10, 1.0 / np.log2(1 + rank), 0.0)


def xquad_ndcg10(
    model,
    dataset: LareqaDataset,
    *,
    language_correction="none",
    infer: bool = False,
    cache: bool = True,
    show_progress: bool = False,
    bf16: bool | None = False,
) -> dict[str, float]:
    """polyret's own nDCG@10 per language on the same subsets as `xquad_retrieval_task`: the same
    texts (paragraphs stripped, see `xquad_subsets`), qrels and tie rule (pytrec_eval's) as mteb.

    language_correction: a spec for `resolve_correction`; with `infer`, each text's language is the
    nearest language mean (what the sentence-transformers module does when no language is given).
    bf16: False (default) encodes in fp32 as mteb's plain `encode` does; polyret's automatic precision
    (None) is bf16 on a CPU with native bf16, which moves nDCG@10 in the third decimal."""
    correction, _ = resolve_correction(language_correction, model)
    out = {}
    for lang, s in xquad_subsets(dataset).items():
        q = encode_texts(
            model, list(s["queries"].values()), "query", cache=cache, show_progress=show_progress, bf16=bf16
        )
        d = encode_texts(
            model, list(s["corpus"].values()), "passage", cache=cache, show_progress=show_progress, bf16=bf16
        )
        if correction is not None:
            q = correction.apply(q, infer_languages(q, correction, "query") if infer else lang, "query")
            d = correction.apply(d, infer_languages(d, correction, "passage") if infer else lang, "passage")
        col = {pid: i for i, pid in enumerate(s["corpus"])}
        relevant = np.array([col[next(iter(s["qrels"][qid]))] for qid in s["queries"]])
        out[lang] = float(ndcg_at_10(q @ d.T, relevant, list(s["corpus"])).mean())
    return out


def lareqa_task_result(results: dict, *, evaluation_time: float | None = None):
    """polyret's LAReQA results dict as an MTEB `TaskResult` (main score: Multi mAP per question language)."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.results import TaskResult

    langs = list(results["languages"])
    name = "PolyretLAReQA-" + str(results.get("dataset", "lareqa")).replace("/", "-")

    class LareqaTask(AbsTaskRetrieval):
        metadata = _metadata(
            name,
            langs,
            "LAReQA (polyret): Multi = each question against the pooled candidates "
            "of all languages; Mono, Cross and rank distance as in polyret eval lareqa.",
            "map",
            "test",
        )

    scores: dict[str, dict] = {"test": {}}
    for lang in langs:
        scores["test"][lang] = {
            "main_score": float(results["multi"]["per_language"][lang]["map"]),
            "multi_map": float(results["multi"]["per_language"][lang]["map"]),
            "mono_map": float(results["mono"]["per_language"][lang]["map"]),
            "cross_map": float(results["cross"]["per_language"][lang]["map"]),
            "rank_distance": float(results["rank_distance"]["per_language"][lang]),
        }
    return TaskResult.from_task_results(LareqaTask(), scores, evaluation_time)
