"""`polyret eval beir`, `polyret eval miracl` and `polyret data export-beir`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from polyret.cli.app import console, data_app, eval_app, measured_settings, say_if_rerun, split_csv, use_device
from polyret.cli.options import (
    ENCODE_BATCH_SIZE,
    BatchSize,
    Cache,
    Candidate,
    ChunkSize,
    DataDir,
    DataName,
    Device,
    HnswEfSearch,
    Index,
    IvfNlist,
    IvfNprobe,
    LanguageCorrection,
    Langs,
    MaxLength,
    Model,
    OptionalCorpus,
    OutDir,
    Overwrite,
    Progress,
    RequiredLang,
    Split,
)
from polyret.errors import PolyretError
from polyret.io import OutputDir


def _map_depth(value: str) -> int | None:
    if value == "all":
        return None
    try:
        depth = int(value)
    except ValueError:
        raise PolyretError(f"--map-depth must be a positive integer or 'all', not {value!r}") from None
    if depth < 1:
        raise PolyretError(f"--map-depth must be a positive integer or 'all', not {value!r}")
    return depth


def _search_options(hnsw_ef_search: int, ivf_nprobe: int, ivf_nlist: Optional[int]):
    from polyret.search import SearchOptions

    return SearchOptions(hnsw_ef_search=hnsw_ef_search, ivf_nprobe=ivf_nprobe, ivf_nlist=ivf_nlist)


def _print_results(res: dict, title: str) -> None:
    from rich.table import Table

    keys = list(res["metrics"])
    table = Table(title=title)
    table.add_column("queries", justify="left")
    for k in keys + ["n"]:
        table.add_column(k, justify="right")
    table.add_row("all", *[f"{100 * res['metrics'][k]:.2f}" for k in keys], str(res["n_queries"]))
    for lang, m in res["per_language"].items():
        table.add_row(lang, *[f"{100 * m[k]:.2f}" for k in keys], str(m["n_queries"]))
    console.print(table)
    info = res["search"]
    if info["kind"] != "flat":
        console.print(
            f"{info['kind']}: recall vs exact@{info['k']} = {info['recall_vs_exact@' + str(info['k'])]:.4f} "
            f"({info['recall_sample_queries']} queries)"
        )


@eval_app.command("beir")
def eval_beir(
    data: DataDir = ...,
    out: OutDir = ...,
    model: Model = "default",
    split: Split = "test",
    index: Index = "flat",
    k: int = typer.Option(100, "--k", min=100, help="Run depth written to run.trec (>= 100: Recall@100 needs it)."),
    map_depth: str = typer.Option(
        "1000", "--map-depth", help="Ranking depth for MAP, or 'all' for the full ranking (LAReQA's mAP)."
    ),
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    chunk_size: ChunkSize = 4096,
    max_length: MaxLength = None,
    hnsw_ef_search: HnswEfSearch = 128,
    ivf_nprobe: IvfNprobe = 16,
    ivf_nlist: IvfNlist = None,
    cache: Cache = False,
    overwrite: Overwrite = False,
    progress: Progress = True,
    language_correction: LanguageCorrection = "auto",
    device: Device = None,
) -> None:
    """Dense retrieval on a BEIR-layout data set: nDCG@10, Recall@100, MRR@10, MAP (pytrec_eval).

    --data: the BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv). Writes results.json,
    report.md, run.trec, per_query.npz, beir_bars.png and corpus-embeddings/ to --out. --cache is off
    by default: the corpus store in --out already makes re-runs free."""
    from polyret.evaluate.beir import beir_task, evaluate_beir
    from polyret.model import load_model

    use_device(device)  # an impossible device fails before anything else
    depth = _map_depth(map_depth)
    settings = measured_settings(
        data=data,
        model=model,
        split=split,
        index=index,
        k=k,
        map_depth=map_depth,
        max_length=max_length,
        hnsw_ef_search=hnsw_ef_search,
        ivf_nprobe=ivf_nprobe,
        ivf_nlist=ivf_nlist,
        language_correction=language_correction,
    )
    target = OutputDir(
        out,
        "eval-beir",
        overwrite=overwrite,
        inputs=[data, Path(model)],
        legacy_files=("results.json", "corpus-embeddings"),
        settings=settings,
    )
    say_if_rerun(target)
    beir_task(data, split)  # check the data before spending time on loading a model
    res = evaluate_beir(
        load_model(model),
        data,
        split=split,
        out_dir=target,
        index=index,
        k=k,
        map_depth=depth,
        batch_size=batch_size,
        chunk_size=chunk_size,
        max_length=max_length,
        cache=cache,
        search_options=_search_options(hnsw_ef_search, ivf_nprobe, ivf_nlist),
        overwrite=overwrite,
        show_progress=progress,
        language_correction=language_correction,
    )
    if res is None:
        return  # a non-zero torchrun rank: it encoded its corpus shards; rank 0 scores and reports
    _print_results(res, f"BEIR {data} ({split})")
    console.print(f"results: {out / 'results.json'}", markup=False)


@eval_app.command("miracl")
def eval_miracl(
    lang: RequiredLang = ...,
    corpus: OptionalCorpus = None,
    out: OutDir = ...,
    model: Model = "default",
    split: Split = "dev",
    topics: Optional[Path] = typer.Option(
        None,
        "--topics",
        help="Topics TSV (default: <data>/miracl/topics/topics.miracl-v1.0-LL-SPLIT.tsv).",
        exists=True,
        dir_okay=False,
    ),
    qrels: Optional[Path] = typer.Option(
        None,
        "--qrels",
        help="TREC qrels (default: <data>/miracl/qrels/qrels.miracl-v1.0-LL-SPLIT.tsv).",
        exists=True,
        dir_okay=False,
    ),
    index: Index = "flat",
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    chunk_size: ChunkSize = 4096,
    max_length: MaxLength = None,
    hnsw_ef_search: HnswEfSearch = 128,
    ivf_nprobe: IvfNprobe = 16,
    ivf_nlist: IvfNlist = None,
    overwrite: Overwrite = False,
    progress: Progress = True,
    language_correction: LanguageCorrection = "auto",
    device: Device = None,
) -> None:
    """MIRACL monolingual retrieval: nDCG@10 and Recall@100 as in the MIRACL paper (top-100 run).

    --lang: one of ar bn de en es fa fi fr hi id ja ko ru sw te th yo zh. --corpus: the MIRACL passage
    corpus for --lang, a JSONL(.gz) file with docid, title, text, or a folder of such shards
    (miracl-corpus-v1.0-LL/ from miracl/miracl-corpus on the Hugging Face hub; polyret never downloads it)."""
    from polyret.evaluate.miracl import evaluate_miracl, miracl_task
    from polyret.model import load_model

    use_device(device)  # an impossible device fails before anything else
    settings = measured_settings(
        lang=lang,
        corpus=corpus,
        model=model,
        split=split,
        topics=topics,
        qrels=qrels,
        index=index,
        max_length=max_length,
        hnsw_ef_search=hnsw_ef_search,
        ivf_nprobe=ivf_nprobe,
        ivf_nlist=ivf_nlist,
        language_correction=language_correction,
    )
    target = OutputDir(
        out,
        "eval-miracl",
        overwrite=overwrite,
        inputs=[corpus, topics, qrels, Path(model)],
        legacy_files=("results.json", "corpus-embeddings"),
        settings=settings,
    )
    say_if_rerun(target)
    miracl_task(lang, corpus, split=split, topics=topics, qrels=qrels)  # check inputs before loading a model

    res = evaluate_miracl(
        load_model(model),
        corpus,
        lang,
        split=split,
        topics=topics,
        qrels=qrels,
        out_dir=target,
        index=index,
        batch_size=batch_size,
        chunk_size=chunk_size,
        max_length=max_length,
        search_options=_search_options(hnsw_ef_search, ivf_nprobe, ivf_nlist),
        overwrite=overwrite,
        show_progress=progress,
        language_correction=language_correction,
    )
    if res is None:
        return  # a non-zero torchrun rank: it encoded its corpus shards; rank 0 scores and reports
    _print_results(res, f"MIRACL {lang} {split}")
    console.print(f"results: {out / 'results.json'}", markup=False)


@data_app.command("export-beir")
def export_beir(
    data: DataName = ...,
    setting: str = typer.Option(..., "--setting", help="multi | mono:LL | cross:XX-YY"),
    out: OutDir = ...,
    dataset: str = typer.Option(
        "lareqa", "--dataset", help="Source format; only lareqa (XQuAD-R, MLQA-R) is supported."
    ),
    langs: Langs = None,
    candidate: Candidate = "sentence",
    split: Split = "test",
    overwrite: Overwrite = False,
) -> None:
    """Write a LAReQA setting as a BEIR data set (then: polyret eval beir --data OUT).

    --data: a LAReQA folder of LL.json files, or a name in the data directory (xquad-r, mlqa-r); --langs
    applies to --setting multi; --split names the qrels file written (qrels/<split>.tsv); --out is the
    BEIR folder written (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""
    from polyret.data.beir import export_lareqa_beir

    if dataset != "lareqa":
        raise PolyretError(f"--dataset {dataset!r} is not supported; only lareqa can be exported")
    info = export_lareqa_beir(
        data, setting, out, langs=split_csv(langs), candidate=candidate, split=split, overwrite=overwrite
    )
    console.print(
        f"wrote {out}: {info['n_queries']} queries, {info['n_docs']} documents, {info['n_judgements']} judgements "
        f"({setting}; languages {', '.join(info['languages'])})"
    )
