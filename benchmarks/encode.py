"""Encoding throughput: `polyret encode` path vs plain `SentenceTransformer.encode` (fp32), same run.

    .venv/bin/python benchmarks/encode.py [--n 2000] [--repeats 2]

Both encode the same N XQuAD-R sentences (all languages, round-robin) with the default model and
the `passage: ` prompt. Reported: texts/s for each, the ratio, and our bf16-autocast path forced on
(on CPUs without native bf16 it is slower; `polyret encode` picks fp32 there automatically).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from polyret.data.download import XQUAD_R_LANGS
from polyret.encode import bf16_supported, encode_texts
from polyret.model import load_model
from polyret.paths import data_path


def xquad_sentences(n: int) -> list[str]:
    per_lang = []
    for lang in XQUAD_R_LANGS:
        d = json.loads(data_path("lareqa", "xquad-r", f"{lang}.json").read_text(encoding="utf-8"))
        per_lang.append([s for a in d["data"] for p in a["paragraphs"] for s in p["sentences"]])
    out, i = [], 0
    while len(out) < n:
        for sents in per_lang:
            if i < len(sents) and len(out) < n:
                out.append(sents[i])
        i += 1
    return out


def best_of(repeats: int, fn) -> tuple[float, np.ndarray]:
    best, res = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    texts = xquad_sentences(args.n)
    model = load_model("default")
    print(
        f"{len(texts)} XQuAD-R sentences, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"native bf16: {bf16_supported()}"
    )

    t_plain, e_plain = best_of(
        args.repeats,
        lambda: model.encode(
            texts, prompt="passage: ", batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
        ),
    )
    t_ours, e_ours = best_of(
        args.repeats, lambda: encode_texts(model, texts, "passage", batch_size=args.batch_size, show_progress=False)
    )
    t_bf16, e_bf16 = best_of(
        1, lambda: encode_texts(model, texts, "passage", batch_size=args.batch_size, bf16=True, show_progress=False)
    )
    rows = {
        "plain SentenceTransformer.encode fp32": t_plain,
        "polyret encode (auto precision)": t_ours,
        "polyret encode, bf16 autocast forced": t_bf16,
    }
    for name, t in rows.items():
        print(f"{name:42s} {len(texts) / t:8.1f} texts/s   ratio vs plain {t_plain / t:5.2f}x")
    print(
        f"min cosine ours vs plain: {(e_ours * e_plain).sum(1).min():.6f}; bf16 vs plain: {(e_bf16 * e_plain).sum(1).min():.6f}"
    )


if __name__ == "__main__":
    main()
