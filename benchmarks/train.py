"""Training throughput and memory: polyret's trainer vs plain sentence-transformers, same run.

    .venv/bin/python benchmarks/train.py [--steps 6] [--batch-size 32] [--max-length 128] [--model default]
    .venv/bin/python benchmarks/train.py memory [--batch-sizes 16,64,128] [--mini-batch-size 16] [--device auto]

`memory` mode: peak memory of a short polyret training run per batch size, with the plain in-batch
loss and with GradCache (`mini_batch_size`), each in its own subprocess. Peak = ru_maxrss on CPU,
`torch.cuda.max_memory_allocated` on CUDA; "over load" subtracts the same process's memory after
loading model and data (a `--steps 0`-like baseline run), i.e. what training itself adds. Prints a
table and the cached/uncached ratio per batch size.

Both sides train the same model on the same MLQA-test pairs (anchor, positive; the model's
query/passage prompts) at the same batch size and max length, each in its own subprocess (so peak
RSS is that run's alone):

- ours:  `polyret.train.train` with its defaults (Hybrid α=0.5 group-aware sampler, in-batch
         InfoNCE τ=0.05, word-embedding matrix frozen, bf16 only on CPUs with native bf16);
- plain: `SentenceTransformerTrainer` + `MultipleNegativesRankingLoss`, default random batch sampler,
         nothing frozen.

pairs/s is measured between the end of step 1 and the end of the last step (model loading, data
building and the first, warm-up step excluded). Peak RSS is the subprocess's ru_maxrss. Prints a
table and the ratio ours/plain (target ≥ 1.0) and writes JSON with --out. Timings on a shared
machine are contended: compare the two numbers of one run, not across runs.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _pairs_table(model_max_groups: int | None = None):
    from polyret.batches import PairTable
    from polyret.config import TrainConfig
    from polyret.train import load_training_groups, split_validation

    cfg = TrainConfig()
    groups = load_training_groups(cfg)
    train_groups, _ = split_validation(groups, cfg.validation_groups, cfg.seed)
    return PairTable.from_groups(train_groups)


def worker_ours(args) -> dict:
    from polyret.config import TrainConfig
    from polyret.train import TRAIN_LOG, train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=args.model, steps=args.steps, batch_size=args.batch_size, max_seq_length=args.max_length,
            validation_groups=0, keep_best=False, logging_steps=1, save_steps=10**6, save_total_limit=1,
        )
        train(cfg, Path(tmp) / "run", show_progress=False)
        log = [json.loads(l) for l in (Path(tmp) / "run" / TRAIN_LOG).read_text().splitlines()]
        t = {r["step"]: r["time"] for r in log if r.get("event") == "log" and "loss" in r}
    return {"step_times": [t[s] for s in sorted(t)]}


def worker_memory(args) -> dict:
    """One short training run at args.batch_size (GradCache when args.mini_batch_size > 0)."""
    import torch

    from polyret import runtime
    from polyret.config import TrainConfig
    from polyret.model import load_model
    from polyret.train import train

    device = runtime.resolve_device(args.device)
    cuda = device.startswith("cuda")
    # Baseline: the process after loading the model and data, before any step.
    model = load_model(args.model, device=device)
    _pairs_table()
    base = torch.cuda.memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    del model
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=args.model, steps=args.steps, batch_size=args.batch_size, max_seq_length=args.max_length,
            validation_groups=0, keep_best=False, logging_steps=1, save_steps=10**6, save_total_limit=1,
            mini_batch_size=args.mini_batch_size or None, device=args.device,
        )
        t0 = time.perf_counter()
        train(cfg, Path(tmp) / "run", show_progress=False)
        wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    return {"device": device, "base_mb": base, "peak_mb": peak, "wall_s": wall}


def memory_table(args) -> dict:
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = {}
    for b in sizes:
        for mini in (0, args.mini_batch_size):
            label = f"batch {b}, {'GradCache mini ' + str(mini) if mini else 'plain'}"
            print(f"running {label} ...", file=sys.stderr)
            cmd = [sys.executable, __file__, "_worker", "memory", "--steps", str(args.steps), "--batch-size", str(b),
                   "--max-length", str(args.max_length), "--model", args.model, "--mini-batch-size", str(mini),
                   "--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
            rows[(b, mini)] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = rows[(b, mini)]  # printed as it comes: a long sweep on a busy machine still reports what finished
            print(f"  {label}: peak {r['peak_mb']:.0f} MB, over load {r['peak_mb'] - r['base_mb']:.0f} MB, "
                  f"{r['wall_s'] / args.steps:.1f} s/step", file=sys.stderr, flush=True)
    dev = next(iter(rows.values()))["device"]
    kind = "CUDA max allocated" if dev.startswith("cuda") else "peak RSS"
    print(f"device {dev}, {args.steps} steps, max length {args.max_length}; memory = {kind} (MB)")
    print("| batch | loss | peak | over load | s/step |\n|---|---|---|---|---|")
    for (b, mini), r in rows.items():
        print(f"| {b} | {'GradCache ' + str(mini) if mini else 'in-batch'} | {r['peak_mb']:.0f} | "
              f"{r['peak_mb'] - r['base_mb']:.0f} | {r['wall_s'] / args.steps:.1f} |")
    for b in sizes:
        plain, cached = rows[(b, 0)], rows[(b, args.mini_batch_size)]
        over = (cached["peak_mb"] - cached["base_mb"]) / max(plain["peak_mb"] - plain["base_mb"], 1e-9)
        print(f"batch {b}: GradCache/plain peak {cached['peak_mb'] / plain['peak_mb']:.2f}x, "
              f"over load {over:.2f}x, time {cached['wall_s'] / plain['wall_s']:.2f}x")
    return {f"{b}/{m}": r for (b, m), r in rows.items()}


def worker_plain(args) -> dict:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from polyret.model import load_model

    table = _pairs_table()
    dataset = table.to_dataset()
    model = load_model(args.model)
    model.max_seq_length = args.max_length
    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            times.append(time.time())

    with tempfile.TemporaryDirectory() as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=3e-5, use_cpu=True, save_strategy="no", report_to="none", disable_tqdm=True,
            logging_steps=10**6, seed=42,
            prompts={"anchor": model.prompts.get("query", ""), "positive": model.prompts.get("passage", "")},
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model, scale=20.0),
            callbacks=[StepTimes()],
        )
        trainer.train()
    return {"step_times": times}


def run_worker(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "_worker", kind, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--model", args.model]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    st = res["step_times"]
    if len(st) < 2:
        raise SystemExit(f"{kind}: need at least 2 steps to time")
    res["seconds_per_step"] = (st[-1] - st[0]) / (len(st) - 1)
    res["pairs_per_second"] = args.batch_size / res["seconds_per_step"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", default="compare")
    ap.add_argument("kind", nargs="?")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--batch-sizes", default="16,64,128", help="memory mode: batch sizes to compare")
    ap.add_argument("--mini-batch-size", type=int, default=16, help="memory mode: GradCache mini-batch (0 = off)")
    ap.add_argument("--device", default="auto", help="memory mode: auto | cpu | cuda | cuda:N")
    args = ap.parse_args()
    if args.mode == "memory":
        res = memory_table(args)
        if args.out:
            args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": res}, indent=2))
        return
    if args.mode == "_worker":
        workers = {"ours": worker_ours, "plain": worker_plain, "memory": worker_memory}
        res = workers[args.kind](args)
        res["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(res))
        return
    results = {}
    for kind in ("plain", "ours"):
        print(f"running {kind} ({args.steps} steps, batch {args.batch_size}, length {args.max_length}) ...", file=sys.stderr)
        results[kind] = run_worker(kind, args)
    ratio = results["ours"]["pairs_per_second"] / results["plain"]["pairs_per_second"]
    print(f"| trainer | pairs/s | s/step | peak RSS (MB) |\n|---|---|---|---|")
    for kind in ("plain", "ours"):
        r = results[kind]
        print(f"| {kind} | {r['pairs_per_second']:.2f} | {r['seconds_per_step']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(f"ratio ours/plain pairs/s: {ratio:.2f}x (target >= 1.0); "
          f"ours peak RSS {results['ours']['peak_rss_mb'] / 1024:.2f} GB (target <= 6 GB at batch 32, length 128)")
    if args.out:
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": results,
                                        "ratio": ratio}, indent=2, default=str))


if __name__ == "__main__":
    main()
