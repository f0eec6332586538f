"""`polyret bias`: where a retriever's top-k results come from, by language, on the user's own data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from polyret.cli.app import app, console, device_option, measured_settings, use_device
from polyret.evaluate.bias import check_corpus, read_records, run_bias
from polyret.io import OutputDir
from polyret.model import load_model


@app.command("bias")
def bias(
    corpus: Path = typer.Option(..., "--corpus", help="Documents, JSONL: 'text' and 'lang' per line."),
    queries: Path = typer.Option(..., "--queries", help="Queries, JSONL: 'text', 'lang', optional 'target_lang' (for TLR@k)."),
    out: Path = typer.Option(..., "--out", help="Output directory (report.md, results.json, bias_heatmap_*.png)."),
    model: str = typer.Option("default", "--model", help="'default', a local model directory, or a hub id."),
    k: int = typer.Option(10, "--k", min=1, help="Results per query that are counted."),
    language_correction: str = typer.Option("auto", "--language-correction",
                                            help="'after' uses: auto (the stored correction) | a model dir holding one | none."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse/store embeddings in the polyret cache."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished output in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    device: Optional[str] = device_option(),
) -> None:
    """Language of the top-k results per query language, before and after the stored correction (no labels needed)."""
    use_device(device)
    settings = measured_settings(model=model, corpus=corpus, queries=queries, k=k, language_correction=language_correction)
    target = OutputDir(out, "bias", overwrite=overwrite, inputs=[corpus, queries], settings=settings)
    check_corpus(read_records(corpus, "corpus"))  # a bad corpus fails before the model loads
    results = run_bias(load_model(model), corpus, queries, target, k=k, language_correction=language_correction,
                       model_name=model, cache=cache, show_progress=progress)
    for stage in ("before", "after"):
        if stage in results:
            m = results[stage]
            tlr = m.get("tlr", {}).get("mean")
            console.print(f"{stage}: own-language preference {m['preference']:.3f}"
                          + (f", TLR@{k} {tlr:.3f}" if tlr is not None else ""), markup=False)
    if "after" not in results:
        console.print("no correction stored with the model: only 'before' (fit one with `polyret correction fit`)")
    console.print(f"-> {out}/report.md", markup=False)
