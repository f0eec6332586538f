"""Benchmark: LAReQA evaluation end to end vs plain sentence-transformers encoding, same run.

    .venv/bin/python benchmarks/lareqa_eval.py                 # full XQuAD-R, default model
    .venv/bin/python benchmarks/lareqa_eval.py --langs en,de   # a subset (quicker)

Measures, with a fresh (empty) embedding cache so every text is really encoded:
  1. polyret: `evaluate_lareqa` end to end (encode + score all settings + write all outputs);
  2. plain:   `SentenceTransformer.encode` in fp32 on exactly the same texts and prompts;
  3. polyret again with the now-filled cache (a re-run after a crash / for another metric);
  4. with --int8: polyret on a copy of the model with torch's dynamic int8 Linear layers
     (per-channel, fbgemm/VNNI) -- faster, but it moves the metrics, so it is not the default.
Targets (issue 3): full XQuAD-R end to end <= 120 s on 2 uncontended cores, scoring + metrics
<= 10% of it. The load average is printed: timings on a shared machine are contended.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default="xquad-r", help="LAReQA folder or data-set name")
    ap.add_argument("--langs", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--candidate", default="sentence")
    ap.add_argument(
        "--scoring-only",
        action="store_true",
        help="time only scoring + metrics on random 384-d embeddings of the data set's shape",
    )
    ap.add_argument(
        "--compute-floor",
        action="store_true",
        help="no encoding: count the tokens and matmul FLOPs the encoder needs for these texts and divide "
        "by this machine's measured fp32 GEMM rate (a lower bound on the encode time)",
    )
    ap.add_argument(
        "--int8",
        action="store_true",
        help="also evaluate a dynamically int8-quantized copy of the model: time and metric drift",
    )
    args = ap.parse_args()
    if args.scoring_only:
        return scoring_only(args)
    if args.compute_floor:
        return compute_floor(args)

    import numpy as np
    import torch

    from polyret.data.lareqa import load_lareqa
    from polyret.encode import bf16_supported
    from polyret.evaluate.lareqa_eval import evaluate_lareqa
    from polyret.model import load_model

    load0 = os.getloadavg()
    ds = load_lareqa(args.data, langs=args.langs.split(",") if args.langs else None)
    model = load_model(args.model)
    q_texts = ds.question_texts()
    c_texts = ds.candidate_texts(args.candidate)
    print(f"{ds.name}: {ds.n_questions} questions, {ds.n_candidates} candidates, languages {','.join(ds.languages)}")
    print(f"torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, bf16 autocast: {bf16_supported()}")
    model.encode(["warm up"] * 4, prompt="query: ")  # first-call overheads out of both timings

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        res = evaluate_lareqa(
            model,
            ds,
            candidate=args.candidate,
            batch_size=args.batch_size,
            out_dir=tmp / "out",
            cache=tmp / "cache",
            show_progress=False,
        )
        polyret_s = time.perf_counter() - t

        t = time.perf_counter()
        with torch.inference_mode():
            q = model.encode(
                q_texts, prompt=model.prompts.get("query"), batch_size=args.batch_size, normalize_embeddings=True
            )
            c = model.encode(
                c_texts, prompt=model.prompts.get("passage"), batch_size=args.batch_size, normalize_embeddings=True
            )
        plain_s = time.perf_counter() - t
        assert q.shape[0] == ds.n_questions and c.shape[0] == ds.n_candidates and np.isfinite(q).all()

        t = time.perf_counter()
        res2 = evaluate_lareqa(
            model,
            ds,
            candidate=args.candidate,
            batch_size=args.batch_size,
            out_dir=tmp / "out",
            cache=tmp / "cache",
            show_progress=False,
            overwrite=True,
        )
        cached_s = time.perf_counter() - t
        assert res2["multi"]["map"] == res["multi"]["map"]
    load1 = os.getloadavg()

    tm = res["timing"]
    print(
        f"polyret end to end         {polyret_s:8.1f} s  (encode {tm['encode_s']:.1f}, score+metrics {tm['score_s']:.2f}, "
        f"write {tm.get('write_s', 0):.2f})"
    )
    print(f"plain ST.encode fp32       {plain_s:8.1f} s  (same texts and prompts, encoding only)")
    print(f"time polyret / plain       {polyret_s / plain_s:8.2f}x  (polyret {plain_s / polyret_s:.2f}x faster)")
    print(f"polyret re-run, cached     {cached_s:8.1f} s  ({cached_s / plain_s:.2f}x plain)")
    print(f"scoring share of total     {tm['score_s'] / polyret_s:8.1%}  (target <= 10%)")
    print(
        f"target full XQuAD-R <= 120 s: {'met' if polyret_s <= 120 else 'NOT met'} in this run"
        + ("" if ds.n_questions == 13_090 else " (subset only: extrapolate)")
    )
    print(
        f"load average before {load0[0]:.1f}, after {load1[0]:.1f} on {os.cpu_count()} cores"
        + ("  -> CONTENDED, timings inflated" if max(load0[0], load1[0]) > (os.cpu_count() or 1) + 0.5 else "")
    )
    print(
        f"mAP mono {res['mono']['map']:.3f} cross {res['cross']['map']:.3f} multi {res['multi']['map']:.3f}; "
        f"rank distance {res['rank_distance']['mean']:.1f}"
    )
    if args.int8:
        int8_drift(args, model, ds, res, polyret_s)


def int8_drift(args, model, ds, res_fp32: dict, fp32_s: float) -> None:
    """The obvious way under the time target: int8 weights and activations in every Linear layer.
    Measured here it is ~1.6x faster but moves Cross and Multi mAP by 0.02-0.07 (cosine to fp32 ~0.987): an
    instrument that shifts what it measures by more than the effects under study is not usable."""
    import copy

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from polyret.evaluate.lareqa_eval import evaluate_lareqa

    q8 = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    t = time.perf_counter()
    res = evaluate_lareqa(
        q8, ds, candidate=args.candidate, batch_size=args.batch_size, cache=False, show_progress=False
    )
    dt = time.perf_counter() - t
    drift = {k: res[k]["map"] - res_fp32[k]["map"] for k in ("mono", "cross", "multi")}
    rd = res["rank_distance"]["mean"] - res_fp32["rank_distance"]["mean"]
    print(
        f"int8 dynamic (per-channel)  {dt:8.1f} s  ({fp32_s / dt:.2f}x faster than fp32 polyret); mAP drift "
        + " ".join(f"{k} {v:+.3f}" for k, v in drift.items())
        + f"; rank distance {rd:+.1f}"
    )


def scoring_only(args) -> None:
    import numpy as np
    import torch  # noqa: F401  (imported before timing: the evaluator runs with a model already loaded)

    from polyret.data.lareqa import load_lareqa
    from polyret.evaluate.lareqa_eval import score_lareqa

    ds = load_lareqa(args.data, langs=args.langs.split(",") if args.langs else None)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((ds.n_questions, 384)).astype(np.float32)
    c = rng.standard_normal((ds.n_candidates, 384)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    load0 = os.getloadavg()
    t = time.perf_counter()
    score_lareqa(q, c, ds)
    dt = time.perf_counter() - t
    print(
        f"{ds.name}: {ds.n_questions} x {ds.n_candidates} scores, all settings + metrics: {dt:.2f} s "
        f"(load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


def encoder_flops(seq_lengths, hidden: int, layers: int, intermediate: int) -> float:
    """Multiply-add FLOPs of a BERT encoder forward pass over sequences of these token lengths:
    per token the Q/K/V/output projections (4·H²) and the feed-forward (2·H·I), per sequence the
    attention products QKᵀ and AV (2·n²·H); ×2 for multiply + add, ×layers. Embedding lookups,
    softmax, layer norms and pooling are left out, so this undercounts: the floor it gives is optimistic."""
    import numpy as np

    n = np.asarray(seq_lengths, dtype=np.float64)
    return float(
        layers * 2 * (n.sum() * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * (n * n).sum() * hidden)
    )


def measured_gemm_gflops(hidden: int, intermediate: int, rows: int = 4096, seconds: float = 3.0) -> float:
    """Sustained fp32 GEMM rate of this machine with torch's current thread count, on the encoder's own
    feed-forward shape (rows × H) @ (H × I) — the best case for the real, smaller and mixed-shape work."""
    import torch

    a, b = torch.randn(rows, hidden), torch.randn(hidden, intermediate)
    for _ in range(3):
        a @ b
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        a @ b
        n += 1
    return 2 * rows * hidden * intermediate * n / (time.perf_counter() - t) / 1e9


def compute_floor(args) -> None:
    import torch

    from polyret.data.lareqa import load_lareqa
    from polyret.model import load_model

    ds = load_lareqa(args.data, langs=args.langs.split(",") if args.langs else None)
    model = load_model(args.model)
    cfg = model[0].auto_model.config
    tok = model.tokenizer
    lengths = []
    for kind, texts in (("query", ds.question_texts()), ("passage", ds.candidate_texts(args.candidate))):
        prompt = (model.prompts or {}).get(kind, "")
        enc = tok([prompt + t for t in texts], truncation=True, max_length=model.max_seq_length)
        lengths += [len(ids) for ids in enc["input_ids"]]
    flops = encoder_flops(lengths, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size)
    load0 = os.getloadavg()
    gflops = measured_gemm_gflops(cfg.hidden_size, cfg.intermediate_size)
    floor_s = flops / (gflops * 1e9)
    print(f"{ds.name}: {len(lengths)} texts, {sum(lengths):,} tokens (mean {sum(lengths) / len(lengths):.1f})")
    print(
        f"encoder matmul work        {flops / 1e12:8.1f} TFLOP  ({cfg.num_hidden_layers} layers, H={cfg.hidden_size}, "
        f"I={cfg.intermediate_size})"
    )
    print(
        f"fp32 GEMM rate, measured   {gflops:8.1f} GFLOP/s  ({torch.get_num_threads()} torch threads, "
        f"load average {load0[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"encode-time floor          {floor_s:8.1f} s  (every FLOP at peak GEMM speed; real runs are slower)")
    print(
        f"target 120 s needs         {flops / 120e9:8.1f} GFLOP/s sustained = {flops / 120e9 / gflops:.2f}x this machine's peak GEMM"
    )


if __name__ == "__main__":
    sys.exit(main())
