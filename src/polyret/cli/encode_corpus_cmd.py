"""`polyret encode-corpus`: a passage corpus -> one on-disk embedding store, sharded under torchrun.

polyret encode-corpus --corpus corpus.jsonl --out emb/                       # one process
torchrun --nproc_per_node 4 -m polyret encode-corpus --corpus ... --out emb/  # 4 GPUs, one store
"""

from __future__ import annotations

from pathlib import Path

import typer

from polyret import runtime
from polyret.cli.app import app, console, use_device
from polyret.cli.options import (
    ENCODE_BATCH_SIZE,
    BatchSize,
    Cache,
    ChunkSize,
    Corpus,
    Device,
    Lang,
    LanguageCorrection,
    MaxLength,
    Model,
    OutDir,
    Overwrite,
    Progress,
    Prompt,
    prompt_side,
    renamed,
)
from polyret.errors import PolyretError

CORPUS_FORMATS = ("auto", "beir", "miracl")


def corpus_docs(path: Path, fmt: str = "auto"):
    """A re-iterable `() -> (doc id, passage text)` over a BEIR corpus.jsonl or MIRACL corpus (file or dir)."""
    from polyret.data import beir, miracl

    if fmt not in CORPUS_FORMATS:
        raise PolyretError(f"--format must be one of {', '.join(CORPUS_FORMATS)}, not {fmt!r}")
    path = Path(path)
    if (
        path.is_dir()
        and fmt in ("auto", "beir")
        and any((path / n).is_file() for n in ("corpus.jsonl", "corpus.jsonl.gz"))
    ):
        path = next(path / n for n in ("corpus.jsonl", "corpus.jsonl.gz") if (path / n).is_file())
        fmt = "beir"
    if fmt == "auto":
        first = miracl.corpus_files(path)[0] if path.exists() else path
        if not first.is_file():
            raise PolyretError(f"{path}: no such corpus file or directory")
        rec = next((obj for _, obj in beir.iter_json_lines(first)), None)
        if rec is None:
            raise PolyretError(f"{first}: the corpus is empty")
        if "_id" in rec:
            fmt = "beir"
        elif "docid" in rec:
            fmt = "miracl"
        else:
            raise PolyretError(f"{first} line 1: neither a BEIR ('_id') nor a MIRACL ('docid') corpus record")
    reader = beir.iter_corpus if fmt == "beir" else miracl.iter_corpus

    def docs():
        return ((d.id, beir.passage_text(d.title, d.text)) for d in reader(path))

    return docs


def _side_encoder(enc, kind: str, correction, lang: str | None):
    """(texts -> vectors, store identity) for one prompt side, language-corrected when `correction` is
    given; the identity is the one `run_retrieval` gives its corpus store for the same encoder."""
    from polyret.correction import infer_languages
    from polyret.evaluate.retrieval import corrected_encoders

    if correction is None:
        return (enc.passages if kind == "passage" else enc.queries), f"{enc.identity}|{kind}"
    corrected = corrected_encoders(enc, correction, doc_lang=lang)
    if kind == "passage":
        return corrected.passages, f"{corrected.identity}|{kind}"

    def queries(texts):
        emb = enc.queries(texts)
        return correction.apply(emb, lang or infer_languages(emb, correction, kind), kind)

    return queries, f"{corrected.identity}|{kind}"


@app.command("encode-corpus", cls=renamed({"--kind": "--prompt"}))
def encode_corpus_command(
    corpus: Corpus = ...,
    out: OutDir = ...,
    model: Model = "default",
    fmt: str = typer.Option("auto", "--format", help="Corpus format: auto | beir | miracl."),
    prompt: Prompt = "passage",
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    chunk_size: ChunkSize = 4096,
    max_length: MaxLength = None,
    cache: Cache = False,
    overwrite: Overwrite = False,
    progress: Progress = True,
    language_correction: LanguageCorrection = "auto",
    lang: Lang = None,
    device: Device = None,
) -> None:
    """Encode a corpus into one store that `eval beir/miracl` and `polyret.search` read.

    --out is the store folder (embeddings.npy, ids.jsonl, progress.json); a re-run resumes it. Under
    torchrun each process encodes every W-th chunk into its own resumable shard; rank 0 merges them
    into a store identical to a one-process encode. Passages are language-corrected as `eval beir` /
    `eval miracl` correct them (each in --lang, else its inferred language), so they reuse the store."""
    from polyret.correction import streaming_correction
    from polyret.evaluate.retrieval import model_encoders
    from polyret.model import load_model
    from polyret.shard import encode_corpus_sharded

    use_device(device)  # an impossible device fails before anything else
    kind = prompt_side(prompt)
    docs = corpus_docs(corpus, fmt)
    m = load_model(model)
    enc = model_encoders(m, batch_size=batch_size, max_length=max_length, cache=cache, show_progress=False)
    correction, info = streaming_correction(language_correction, m, model_name=model)
    encode, identity = _side_encoder(enc, kind, correction, lang)
    # The identity run_retrieval uses for its corpus store: eval beir/miracl reuse a store made here.
    store = encode_corpus_sharded(
        docs,
        out,
        encode,
        identity=identity,
        chunk_size=chunk_size,
        overwrite=overwrite,
        show_progress=progress,
        description="encoding corpus",
    )
    if runtime.is_main_process():
        console.print(
            f"[green]{store.n}[/] documents x {store.dim} -> {out} "
            f"({runtime.world_size()} process{'es' if runtime.world_size() > 1 else ''}, {enc.runtime.get('device')})"
        )
        if correction is not None:
            console.print(f"language correction: {info['method']} ({info['statistics']})", markup=False)
        print(out)
