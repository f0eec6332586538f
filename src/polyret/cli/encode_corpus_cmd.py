"""`polyret encode-corpus`: a passage corpus -> one on-disk embedding store, sharded under torchrun.

    polyret encode-corpus --corpus corpus.jsonl --out emb/                       # one process
    torchrun --nproc_per_node 4 -m polyret encode-corpus --corpus ... --out emb/  # 4 GPUs, one store
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from polyret import runtime
from polyret.cli.app import app, console, device_option, use_device
from polyret.data import beir, miracl
from polyret.encode import ENCODE_BATCH_SIZE
from polyret.errors import PolyretError
from polyret.evaluate.retrieval import model_encoders
from polyret.model import load_model
from polyret.shard import encode_corpus_sharded

CORPUS_FORMATS = ("auto", "beir", "miracl")


def corpus_docs(path: Path, fmt: str = "auto"):
    """A re-iterable `() -> (doc id, passage text)` over a BEIR corpus.jsonl or MIRACL corpus (file or dir)."""
    if fmt not in CORPUS_FORMATS:
        raise PolyretError(f"--format must be one of {', '.join(CORPUS_FORMATS)}, not {fmt!r}")
    path = Path(path)
    if path.is_dir() and fmt in ("auto", "beir") and any((path / n).is_file() for n in ("corpus.jsonl", "corpus.jsonl.gz")):
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


@app.command("encode-corpus")
def encode_corpus_command(
    corpus: Path = typer.Option(..., "--corpus", help="BEIR corpus.jsonl(.gz) (or its directory), or a MIRACL corpus file / directory of shards."),
    out: Path = typer.Option(..., "--out", help="Store directory (embeddings.npy, ids.jsonl, progress.json); a re-run resumes it."),
    model: str = typer.Option("default", "--model", help="Model name or directory."),
    fmt: str = typer.Option("auto", "--format", help="Corpus format: auto | beir | miracl."),
    kind: str = typer.Option("passage", "--kind", help="Prompt: passage or query."),
    batch_size: int = typer.Option(ENCODE_BATCH_SIZE, "--batch-size"),
    chunk_size: int = typer.Option(4096, "--chunk-size", help="Documents per resumable chunk (and per shard unit under torchrun)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Truncate texts to N tokens."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store of another corpus/encoder in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    device: Optional[str] = device_option(),
) -> None:
    """Encode a corpus into one store that `eval beir/miracl` and `polyret.search` read.

    Under torchrun each process encodes every W-th chunk into its own resumable shard; rank 0 merges
    them into a store identical to a one-process encode."""
    use_device(device)
    if kind not in ("query", "passage"):
        raise PolyretError(f"--kind must be 'query' or 'passage', not {kind!r}")
    docs = corpus_docs(corpus, fmt)
    enc = model_encoders(load_model(model), batch_size=batch_size, max_length=max_length, show_progress=False)
    encode = enc.passages if kind == "passage" else enc.queries
    # The identity run_retrieval uses for its corpus store: eval beir/miracl reuse a store made here.
    store = encode_corpus_sharded(docs, out, encode, identity=f"{enc.identity}|{kind}", chunk_size=chunk_size,
                                  overwrite=overwrite, show_progress=progress, description="encoding corpus")
    if runtime.is_main_process():
        console.print(f"[green]{store.n}[/] documents x {store.dim} -> {out} "
                      f"({runtime.world_size()} process{'es' if runtime.world_size() > 1 else ''}, {enc.runtime.get('device')})")
        print(out)
