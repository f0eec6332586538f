"""`polyret eval lareqa`: LAReQA (XQuAD-R / MLQA-R) Mono, Cross and Multi retrieval + language bias."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from polyret.cli.app import console, eval_app, split_csv
from polyret.data.lareqa import load_lareqa
from polyret.encode import ENCODE_BATCH_SIZE
from polyret.evaluate.lareqa_eval import evaluate_lareqa
from polyret.io import OutputDir
from polyret.model import load_model
from rich.markup import escape


@eval_app.command("lareqa")
def eval_lareqa(
    out: Path = typer.Option(..., "--out", help="Output directory (results.json, report.md, cross_map_heatmap.png, multi.trec, qrels.trec)."),
    model: str = typer.Option("default", "--model", help="Model: 'default', a local directory, or a hub id."),
    data: str = typer.Option("xquad-r", "--data", help="Folder of LL.json files, or a data-set name under <data>/lareqa (xquad-r)."),
    langs: Optional[str] = typer.Option(None, "--langs", help="Comma-separated languages (default: every LL.json in --data)."),
    candidate: str = typer.Option("sentence", "--candidate", help="Candidate text: 'sentence' or 'sentence+context'."),
    batch_size: int = typer.Option(ENCODE_BATCH_SIZE, "--batch-size", min=1, help="Encoding batch size."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse/store embeddings in the polyret cache."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out, replacing our result files."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Evaluate an encoder on LAReQA: every setting is a slice of one question x candidate score matrix."""
    # The output-folder policy (polyret.io) before any slow work.
    target = OutputDir(out, "eval-lareqa", overwrite=overwrite, inputs=[Path(data), Path(model)], legacy_files=("results.json",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_lareqa(data, langs=split_csv(langs))
    for w in caught:
        console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    console.print(
        f"{dataset.name}: {dataset.n_questions} questions, {dataset.n_candidates} candidates, "
        f"{len(dataset.languages)} languages ({', '.join(dataset.languages)})"
    )
    enc = load_model(model)
    res = evaluate_lareqa(
        enc, dataset, candidate=candidate, batch_size=batch_size, out_dir=target, cache=cache,
        show_progress=progress, overwrite=overwrite, model_name=model,
    )
    table = Table(title=f"LAReQA {res['dataset']} ({candidate})")
    cols = ("query lang", "Mono mAP", "Mono R@1", "Cross mAP", "Cross R@1", "Multi mAP", "Multi R@10", "rank dist.", "top-10 own")
    for col in cols:
        table.add_column(col, justify="left" if col == "query lang" else "right")

    def f(x, fmt=".3f"):
        return "–" if x is None or x != x else format(x, fmt)

    share = res["top10_own_language_share"]
    for lang in res["languages"]:
        mo, cr, mu = (res[s]["per_language"][lang] for s in ("mono", "cross", "multi"))
        table.add_row(lang, f(mo["map"]), f(mo["recall@1"]), f(cr["map"]), f(cr["recall@1"]), f(mu["map"]),
                      f(mu["recall@10"]), f(res["rank_distance"]["per_language"][lang], ".1f"), f(share["per_language"][lang]))
    table.add_row("avg", f(res["mono"]["map"]), f(res["mono"]["recall@1"]), f(res["cross"]["map"]), f(res["cross"]["recall@1"]),
                  f(res["multi"]["map"]), f(res["multi"]["recall@10"]), f(res["rank_distance"]["mean"], ".1f"), f(share["mean"]),
                  style="bold")
    console.print(table)
    t = res["timing"]
    console.print(
        f"encode {t['encode_s']:.1f}s, score {t['score_s']:.1f}s, total {t['total_s']:.1f}s -> {out}/results.json", markup=False
    )
