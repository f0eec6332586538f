"""`polyret bias`: where a retriever's top-k results come from, by language, on the user's own data."""

from __future__ import annotations

from pathlib import Path

import typer

from polyret.cli.app import app, console, measured_settings, use_device
from polyret.cli.options import (
    ENCODE_BATCH_SIZE,
    BatchSize,
    Cache,
    Corpus,
    Device,
    LanguageCorrection,
    Model,
    OutDir,
    Overwrite,
    Progress,
)
from polyret.io import OutputDir


@app.command("bias")
def bias(
    corpus: Corpus = ...,
    queries: Path = typer.Option(
        ...,
        "--queries",
        exists=True,
        dir_okay=False,
        help="Queries, JSONL: 'text', 'lang', optional 'target_lang' (for TLR@k).",
    ),
    out: OutDir = ...,
    model: Model = "default",
    # --top-k first: `--k` means run depth in eval beir/miracl and one option name has one help text.
    k: int = typer.Option(10, "--top-k", "--k", min=1, help="Results per query whose languages are counted."),
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    cache: Cache = True,
    language_correction: LanguageCorrection = "auto",
    overwrite: Overwrite = False,
    progress: Progress = True,
    device: Device = None,
) -> None:
    """Language of the top-k results per query language, before and after the stored correction (no labels needed).

    --corpus: a JSONL file, 'text' and 'lang' on every line (e.g. a BEIR corpus.jsonl with a 'lang'
    field added). Writes report.md, results.json and bias_heatmap_{before,after}.png to --out."""
    from polyret.evaluate.bias import check_corpus, read_records, run_bias
    from polyret.model import load_model

    use_device(device)
    settings = measured_settings(
        model=model, corpus=corpus, queries=queries, k=k, language_correction=language_correction
    )
    target = OutputDir(out, "bias", overwrite=overwrite, inputs=[corpus, queries], settings=settings)
    check_corpus(read_records(corpus, "corpus"))  # a bad corpus fails before the model loads
    results = run_bias(
        load_model(model),
        corpus,
        queries,
        target,
        k=k,
        language_correction=language_correction,
        model_name=model,
        cache=cache,
        show_progress=progress,
        batch_size=batch_size,
    )
    for stage in ("before", "after"):
        if stage in results:
            m = results[stage]
            tlr = m.get("tlr", {}).get("mean")
            console.print(
                f"{stage}: own-language preference {m['preference']:.3f}"
                + (f", TLR@{k} {tlr:.3f}" if tlr is not None else ""),
                markup=False,
            )
    if "after" not in results:
        console.print("no correction stored with the model: only 'before' (fit one with `polyret correction fit`)")
    console.print(f"-> {out}/report.md", markup=False)
