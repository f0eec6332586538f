"""The CLI's one vocabulary: every option that more than one command takes is defined here once, with
one help text, as a typed `Annotated` alias (`model: Model = "default"`). tests/test_cli_vocabulary.py
walks every command and fails when a command spells a shared option another way, gives it another
help text, or encodes without the shared encoding options.

Old spellings (`--dest`, `--into`, `--force`, `--kind`, `--xquad-r`) still work through `renamed`:
the command rewrites them to the new name before parsing, with one warning line on stderr, and they
are absent from `--help`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from polyret.errors import PolyretError
from polyret.runtime import DEVICE_HELP, console

# polyret.encode.ENCODE_BATCH_SIZE, repeated: importing polyret.encode (numpy) would make every --help
# pay for it. tests/test_cli_vocabulary.py keeps the two equal.
ENCODE_BATCH_SIZE = 32

# ----------------------------------------------------------------------------- help texts
MODEL_HELP = "Model: 'default' (multilingual-e5-small, prepared on first use), a local model directory, or a hub id."
DATA_HELP = (
    "Input data: a folder (or file) in the layout the command reads, or a data-set name in the data "
    "directory (POLYRET_DATA, ./data, ../shared/data); the command's description says which."
)
OUT_HELP = "Where to write the output (a folder unless the command's description says a file)."
OVERWRITE_HELP = "Replace output already at --out (without it polyret never replaces a file it did not just write)."
BATCH_SIZE_HELP = "Texts per encoding batch (train: pairs per optimizer step, per process)."
CACHE_HELP = "Reuse and store text embeddings in the polyret embedding cache."
LANGS_HELP = (
    "Comma-separated language codes, e.g. de,sw (Tatoeba also takes its own deu,swh); "
    "default: every language of the data."
)
LANG_HELP = "One language code, e.g. sw: the language of the texts (or of the MIRACL queries and corpus)."
LANGUAGE_CORRECTION_HELP = (
    "Per-language correction of the embeddings: auto (the model's stored correction, else none) | none | "
    "center | center-both | lir | procrustes | rotate (from the stored statistics; eval lareqa can also fit "
    "one on its own texts) | a model dir holding a stored correction."
)
DEVICE_OPTION_HELP = DEVICE_HELP + " Default: a config's device, POLYRET_DEVICE, else auto."
PROMPT_HELP = "Which of the model's prompts to encode with: query or passage (eval xnli / tatoeba: also none)."
PROGRESS_HELP = "Show progress bars."
JSON_HELP = "Print the result as JSON on stdout."
MAX_LENGTH_HELP = "Truncate texts to N tokens (default: the model's maximum)."
CHUNK_SIZE_HELP = "Documents encoded per resumable chunk (bounds memory; under torchrun, the unit each process takes)."
CONFIG_HELP = "YAML config file (see configs/)."
SEED_HELP = "Random seed."
SPLIT_HELP = "Which split of the data to use (xnli: dev | test; beir: qrels/<split>.tsv; miracl: dev | train)."
CORPUS_HELP = "Passage corpus: a BEIR corpus.jsonl(.gz) (or its folder), or a MIRACL corpus file / folder of shards."
CANDIDATE_HELP = "LAReQA candidate text: sentence or sentence+context."
LOW_RESOURCE_HELP = "Comma-separated languages of the low-resource block."
LABEL_HELP = "Name of this side in the report."
PERMUTATIONS_HELP = "Random sign flips of the paired permutation test."
BOOTSTRAP_HELP = "Bootstrap resamples for the confidence intervals."
INDEX_HELP = (
    "Search index: flat (exact FAISS IndexFlatIP, streamed from disk), hnsw or ivf "
    "(approximate, in RAM; recall vs exact is reported)."
)
HNSW_EF_SEARCH_HELP = "hnsw: candidates kept per search (higher: better recall, slower)."
IVF_NPROBE_HELP = "ivf: clusters searched per query."
IVF_NLIST_HELP = "ivf: clusters (default: 4 x sqrt(corpus size), at most corpus size / 39)."

# ----------------------------------------------------------------------------- the shared options
Model = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
OptionalModel = Annotated[Optional[str], typer.Option("--model", "-m", help=MODEL_HELP)]
DataName = Annotated[str, typer.Option("--data", help=DATA_HELP)]
DataDir = Annotated[Path, typer.Option("--data", help=DATA_HELP, exists=True, file_okay=False)]
OptionalDataDir = Annotated[Optional[Path], typer.Option("--data", help=DATA_HELP, exists=True, file_okay=False)]
OptionalDataPath = Annotated[Optional[Path], typer.Option("--data", help=DATA_HELP)]  # the command names a missing one
# An output folder: a regular file there is refused by click before anything runs.
OutDir = Annotated[Path, typer.Option("--out", "-o", help=OUT_HELP, file_okay=False)]
OptionalOutDir = Annotated[Optional[Path], typer.Option("--out", "-o", help=OUT_HELP, file_okay=False)]
OutFile = Annotated[Path, typer.Option("--out", "-o", help=OUT_HELP, dir_okay=False)]
OptionalOutFile = Annotated[Optional[Path], typer.Option("--out", "-o", help=OUT_HELP, dir_okay=False)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)]
Device = Annotated[Optional[str], typer.Option("--device", help=DEVICE_OPTION_HELP)]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help=BATCH_SIZE_HELP)]
OptionalBatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help=BATCH_SIZE_HELP)]
Cache = Annotated[bool, typer.Option("--cache/--no-cache", help=CACHE_HELP)]
Langs = Annotated[Optional[str], typer.Option("--langs", help=LANGS_HELP)]
RequiredLangs = Annotated[str, typer.Option("--langs", help=LANGS_HELP)]
Lang = Annotated[Optional[str], typer.Option("--lang", help=LANG_HELP)]
RequiredLang = Annotated[str, typer.Option("--lang", help=LANG_HELP)]
LanguageCorrection = Annotated[str, typer.Option("--language-correction", help=LANGUAGE_CORRECTION_HELP)]
Prompt = Annotated[str, typer.Option("--prompt", help=PROMPT_HELP)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)]
Json = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
MaxLength = Annotated[Optional[int], typer.Option("--max-length", min=1, help=MAX_LENGTH_HELP)]
ChunkSize = Annotated[int, typer.Option("--chunk-size", min=1, help=CHUNK_SIZE_HELP)]
Config = Annotated[Optional[Path], typer.Option("--config", help=CONFIG_HELP, exists=True, dir_okay=False)]
Seed = Annotated[int, typer.Option("--seed", help=SEED_HELP)]
OptionalSeed = Annotated[Optional[int], typer.Option("--seed", help=SEED_HELP)]
Split = Annotated[str, typer.Option("--split", help=SPLIT_HELP)]
Corpus = Annotated[Path, typer.Option("--corpus", help=CORPUS_HELP, exists=True)]
OptionalCorpus = Annotated[Optional[Path], typer.Option("--corpus", help=CORPUS_HELP)]
Candidate = Annotated[str, typer.Option("--candidate", help=CANDIDATE_HELP)]
LowResource = Annotated[Optional[str], typer.Option("--low-resource", help=LOW_RESOURCE_HELP)]
LabelA = Annotated[str, typer.Option("--label-a", help=LABEL_HELP)]
LabelB = Annotated[str, typer.Option("--label-b", help=LABEL_HELP)]
Permutations = Annotated[int, typer.Option("--permutations", min=1, help=PERMUTATIONS_HELP)]
Bootstrap = Annotated[int, typer.Option("--bootstrap", min=1, help=BOOTSTRAP_HELP)]
Index = Annotated[str, typer.Option("--index", help=INDEX_HELP)]
HnswEfSearch = Annotated[int, typer.Option("--hnsw-ef-search", min=1, help=HNSW_EF_SEARCH_HELP)]
IvfNprobe = Annotated[int, typer.Option("--ivf-nprobe", min=1, help=IVF_NPROBE_HELP)]
IvfNlist = Annotated[Optional[int], typer.Option("--ivf-nlist", min=1, help=IVF_NLIST_HELP)]

# The options a command that encodes text must take (tests/test_cli_vocabulary.py checks them).
ENCODING_OPTIONS = ("--model", "--batch-size", "--cache", "--language-correction", "--device")


# ----------------------------------------------------------------------------- old spellings
class RenamedOptions(TyperCommand):
    """A command that still accepts old option spellings (`renamed` maps them to the new names)."""

    renamed: dict[str, str] = {}

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_old_spellings(args, self.renamed, ctx.command_path))


def renamed(mapping: dict[str, str]) -> type[RenamedOptions]:
    """`@app.command("x", cls=renamed({"--dest": "--out"}))`: --dest keeps working, hidden, with a warning."""
    return type("RenamedOptions", (RenamedOptions,), {"renamed": dict(mapping)})


def rewrite_old_spellings(args: list[str], mapping: dict[str, str], command: str = "polyret") -> list[str]:
    """`args` with every old option spelling (`--dest X`, `--dest=X`) replaced by its new name; one
    deprecation line on stderr per old spelling used. Nothing after a bare `--` is touched."""
    out: list[str] = []
    warned: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            return out + list(args[i:])
        old, eq, value = arg.partition("=")
        new = mapping.get(old)
        if new is None:
            out.append(arg)
            continue
        if old not in warned:
            warned.add(old)
            console.print(
                f"warning: {command} {old} is deprecated; use {new}", markup=False, highlight=False, soft_wrap=True
            )
        out.append(new + eq + value)
    return out


def prompt_side(value: str, *, allow_none: bool = False) -> str | None:
    """--prompt's value checked: 'query' | 'passage' (| 'none' -> None where allowed)."""
    allowed = ("query", "passage", "none") if allow_none else ("query", "passage")
    if value not in allowed:
        raise PolyretError(f"--prompt must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {value!r}")
    return None if value == "none" else value
