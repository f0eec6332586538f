"""Training throughput and memory: polyret's trainer vs plain sentence-transformers, same run.

    .venv/bin/python benchmarks/train.py [--steps 6] [--batch-size 32] [--max-length 128] [--model default]
    .venv/bin/python benchmarks/train.py memory [--batch-sizes 16,32,64] [--mini-batch-size 8] [--steps 2] [--device auto]
    .venv/bin/python benchmarks/train.py recipe [--config configs/quick-v2.yaml] [--candidate "FILE [KEY=VALUE ...]"] [--steps 5]

`recipe` mode: the time per step of a shipped recipe as it trains (its data, batches, loss and teacher
terms) and of each candidate recipe (`--candidate`, repeatable: a training config and overrides, e.g.
"configs/quick.yaml n_negatives=1 negatives_language=query"; default: configs/quick.yaml against
configs/quick-v2.yaml, the shipped recipe before issue 27), each in a fresh subprocess on CPU, as CPU seconds per step of one thread (the
median of steps 2..N; step 1 warms up): issue 27 asks a candidate to cost <= 1.5x the recipe's step.
No validation, checkpoints or correction fit.

`memory` mode: peak memory and time of the training steps per batch size, four trainers per batch
size, each in a fresh subprocess: polyret with the plain in-batch loss, polyret with GradCache
(`mini_batch_size`), and plain sentence-transformers with `MultipleNegativesRankingLoss` and with
`CachedMultipleNegativesRankingLoss` (the same mini-batch). Memory is measured around
`trainer.train()` only (a TrainerCallback): CPU = the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs when training begins) and its RSS then ("start": model, data, trainer built);
CUDA = `torch.cuda.max_memory_allocated` (peak stats reset when training begins) and
`memory_allocated` then. "added" = peak - start: what the steps themselves need (activations,
gradients, optimizer state). s/step is the last step's time (step 1 allocates the optimizer state and
warms up), as wall time and as this process's CPU seconds (with one thread per process, CPU seconds
barely depend on other jobs sharing the machine; the CPU ratios use them). Prints a table,
GradCache/plain ratios per batch size and polyret/sentence-transformers ratios per loss.

Both sides train the same model on the same MLQA-test pairs (anchor, positive; the model's
query/passage prompts) at the same batch size and max length, each in its own subprocess (so peak
RSS is that run's alone):

- ours:  `polyret.train.train` with its defaults (Hybrid α=0.5 group-aware sampler, in-batch
         InfoNCE τ=0.05, word-embedding matrix frozen, bf16 only on CPUs with native bf16);
- plain: `SentenceTransformerTrainer` + `MultipleNegativesRankingLoss`, default random batch sampler,
         nothing frozen, the same precision as ours (`polyret.runtime.precision_for`).

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

from transformers import TrainerCallback


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


def _timing_config(args, **extra):
    """The training config both timed polyret runs share: no validation, no best-model selection, a log
    line every step, no checkpoints in the way."""
    from polyret.config import TrainConfig

    return TrainConfig(
        model=args.model,
        steps=args.steps,
        batch_size=args.batch_size,
        max_seq_length=args.max_length,
        validation_groups=0,
        keep_best=False,
        logging_steps=1,
        save_steps=10**6,
        save_total_limit=1,
        **extra,
    )


def worker_ours(args) -> dict:
    from polyret.train import TRAIN_LOG, train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _timing_config(args)
        train(cfg, Path(tmp) / "run", show_progress=False)
        log = [json.loads(l) for l in (Path(tmp) / "run" / TRAIN_LOG).read_text().splitlines()]
        t = {r["step"]: r["time"] for r in log if r.get("event") == "log" and "loss" in r}
    return {"step_times": [t[s] for s in sorted(t)]}


class StepMeter(TrainerCallback):
    """TrainerCallback hooks: the peak memory of `trainer.train()` and the time of every step."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.cuda = device.startswith("cuda")
        self.step_times: list[float] = []
        # CPU seconds of this process: on a shared machine they hardly depend on what else runs (wall
        # time does); meaningless on CUDA, where the work is the GPU's.
        self.step_cpu_times: list[float] = []
        self.start_mb = self.peak_mb = 0.0

    @staticmethod
    def _status_mb(field: str) -> float:
        import re

        status = Path("/proc/self/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024.0  # kB

    def on_train_begin(self, args, state, control, **kw):
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start_mb = torch.cuda.memory_allocated() / 2**20
        else:
            Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
            self.start_mb = self._status_mb("VmRSS")

    def on_step_begin(self, args, state, control, **kw):
        self._t, self._cpu = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kw):
        self.step_times.append(time.perf_counter() - self._t)
        self.step_cpu_times.append(time.process_time() - self._cpu)

    def on_train_end(self, args, state, control, **kw):
        import torch

        self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else self._status_mb("VmHWM")

    def result(self, device: str) -> dict:
        return {
            "device": device,
            "start_mb": self.start_mb,
            "peak_mb": self.peak_mb,
            "step_times": self.step_times,
            "step_cpu_times": self.step_cpu_times,
        }


def _candidate(spec: str) -> tuple[str, dict]:
    """'FILE KEY=VALUE ...' -> (FILE, overrides); values are YAML (1, query, [a, b])."""
    import yaml

    path, *pairs = spec.split()
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--candidate {spec!r}: {pair!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return path, overrides


def worker_recipe(args) -> dict:
    """A few steps of the training config `args.candidate` (FILE plus overrides), timed by a StepMeter."""
    from polyret.config import load_train_config
    from polyret.train import train

    path, overrides = _candidate(args.candidate[0])
    meter = StepMeter("cpu")
    overrides |= {
        "steps": args.steps,
        "validation_groups": 0,
        "keep_best": False,
        "save_steps": 10**6,
        "eval_steps": 10**6,
        "language_correction": "none",
        "device": "cpu",
    }
    with tempfile.TemporaryDirectory() as tmp:
        train(load_train_config(path, overrides), Path(tmp) / "run", show_progress=False, callbacks=[meter])
    return meter.result("cpu")


def recipe_table(args) -> dict:
    import statistics

    candidates = args.candidate or [str(Path(__file__).resolve().parents[1] / "configs" / "quick.yaml")]
    results = {}
    for spec in [str(args.config), *candidates]:
        cmd = [sys.executable, __file__, "_worker", "recipe", "--steps", str(args.steps), "--candidate", spec]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{spec} worker failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["cpu_s_per_step"] = statistics.median(res["step_cpu_times"][1:])
        res["wall_s_per_step"] = statistics.median(res["step_times"][1:])
        results[spec] = res
    base = results[str(args.config)]["cpu_s_per_step"]
    ratios = {spec: r["cpu_s_per_step"] / base for spec, r in results.items()}
    print("| recipe | CPU s/step | wall s/step | CPU × the recipe (target <= 1.5) |\n|---|---|---|---|")
    for spec, r in results.items():
        print(f"| {spec} | {r['cpu_s_per_step']:.2f} | {r['wall_s_per_step']:.2f} | {ratios[spec]:.2f}x |")
    return {"results": results, "ratios": ratios}


def worker_memory(args) -> dict:
    """One short training run at args.batch_size: polyret or plain sentence-transformers (args.trainer),
    GradCache when args.mini_batch_size > 0."""
    from polyret import runtime

    device = runtime.resolve_device(args.device)
    meter = StepMeter(device)
    if args.trainer == "st":
        _st_train(args, device, mini_batch_size=args.mini_batch_size, callbacks=[meter])
        return meter.result(device)
    from polyret.train import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _timing_config(args, mini_batch_size=args.mini_batch_size or None, device=device)
        train(cfg, Path(tmp) / "run", show_progress=False, callbacks=[meter])
    return meter.result(device)


MEMORY_RUNS = (("polyret", False), ("polyret", True), ("st", False), ("st", True))


def _memory_label(trainer: str, cached: bool, mini: int) -> str:
    name = "polyret" if trainer == "polyret" else "sentence-transformers"
    if trainer == "polyret":
        return f"{name} {'GradCache ' + str(mini) if cached else 'in-batch'}"
    return f"{name} {'CachedMNRL ' + str(mini) if cached else 'MNRL'}"


def memory_table(args) -> dict:
    if args.mini_batch_size < 1:
        raise SystemExit("memory mode compares against GradCache: --mini-batch-size must be >= 1")
    if args.steps < 2:
        raise SystemExit("memory mode times the last step after a warm-up step: --steps must be >= 2")
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = {}
    for b in sizes:
        for trainer, cached in MEMORY_RUNS:
            label = f"batch {b}, {_memory_label(trainer, cached, args.mini_batch_size)}"
            print(f"running {label} ...", file=sys.stderr, flush=True)
            cmd = [
                sys.executable,
                __file__,
                "_worker",
                "memory",
                "--steps",
                str(args.steps),
                "--batch-size",
                str(b),
                "--max-length",
                str(args.max_length),
                "--model",
                args.model,
                "--device",
                args.device,
                "--trainer",
                trainer,
                "--mini-batch-size",
                str(args.mini_batch_size if cached else 0),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
            r = rows[(b, trainer, cached)] = json.loads(proc.stdout.strip().splitlines()[-1])
            r["added_mb"] = r["peak_mb"] - r["start_mb"]
            r["seconds_per_step"] = r["step_times"][-1]
            r["cpu_seconds_per_step"] = r["step_cpu_times"][-1]
            # printed as it comes: a long sweep on a busy machine still reports what finished
            print(
                f"  peak {r['peak_mb']:.0f} MB, added {r['added_mb']:.0f} MB, {r['seconds_per_step']:.1f} s/step, "
                f"{r['cpu_seconds_per_step']:.1f} CPU s/step (steps: {', '.join(f'{t:.1f}' for t in r['step_times'])} s)",
                file=sys.stderr,
                flush=True,
            )
    dev = next(iter(rows.values()))["device"]
    kind = "CUDA max allocated" if dev.startswith("cuda") else "peak RSS"
    # The time ratios use CPU seconds on the CPU (robust to other jobs on a shared machine), wall time on a GPU.
    time_key = "seconds_per_step" if dev.startswith("cuda") else "cpu_seconds_per_step"
    print(
        f"device {dev}, {args.steps} steps, max length {args.max_length}, model {args.model}; "
        f"memory = {kind} during trainer.train() (MB); s/step = the last step (wall, and CPU seconds)"
    )
    print("| batch | trainer, loss | start | peak | added | s/step | CPU s/step |\n|---|---|---|---|---|---|---|")
    for (b, trainer, cached), r in rows.items():
        print(
            f"| {b} | {_memory_label(trainer, cached, args.mini_batch_size)} | {r['start_mb']:.0f} | "
            f"{r['peak_mb']:.0f} | {r['added_mb']:.0f} | {r['seconds_per_step']:.1f} | {r['cpu_seconds_per_step']:.1f} |"
        )
    print(f"\nratios (added memory, {'wall' if time_key == 'seconds_per_step' else 'CPU'} s/step):")
    for b in sizes:
        for trainer in ("polyret", "st"):
            plain, cached = rows[(b, trainer, False)], rows[(b, trainer, True)]
            print(
                f"batch {b}, {'polyret' if trainer == 'polyret' else 'sentence-transformers'}: GradCache/plain "
                f"added {cached['added_mb'] / plain['added_mb']:.2f}x, time "
                f"{cached[time_key] / plain[time_key]:.2f}x"
            )
        for cached in (False, True):
            ours, st = rows[(b, "polyret", cached)], rows[(b, "st", cached)]
            print(
                f"batch {b}, {'GradCache' if cached else 'plain loss'}: polyret/sentence-transformers "
                f"added {ours['added_mb'] / st['added_mb']:.2f}x, peak {ours['peak_mb'] / st['peak_mb']:.2f}x, "
                f"time {ours[time_key] / st[time_key]:.2f}x"
            )
    return {f"{b}/{t}/{'cached' if c else 'plain'}": r for (b, t, c), r in rows.items()}


def _st_train(args, device: str = "cpu", *, mini_batch_size: int = 0, callbacks=()) -> None:
    """Plain sentence-transformers as a user would write it: SentenceTransformerTrainer with
    MultipleNegativesRankingLoss (CachedMultipleNegativesRankingLoss with mini_batch_size), the default
    random batch sampler, nothing frozen; same model, pairs, prompts, τ, max length and precision as polyret."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from polyret import runtime
    from polyret.model import load_model

    dataset = _pairs_table().to_dataset()
    model = load_model(args.model, device=device)
    model.max_seq_length = args.max_length
    loss = (
        CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=mini_batch_size)
        if mini_batch_size
        else MultipleNegativesRankingLoss(model, scale=20.0)
    )
    with tempfile.TemporaryDirectory() as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=3e-5,
            use_cpu=device == "cpu",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_steps=10**6,
            seed=42,
            **runtime.trainer_precision_args(runtime.precision_for(device)),
            prompts={"anchor": model.prompts.get("query", ""), "positive": model.prompts.get("passage", "")},
        )
        SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=dataset, loss=loss, callbacks=list(callbacks)
        ).train()


def worker_plain(args) -> dict:
    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            times.append(time.time())

    _st_train(args, callbacks=[StepTimes()])
    return {"step_times": times}


def run_worker(kind: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "_worker",
        kind,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--model",
        args.model,
    ]
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
    ap.add_argument("--batch-sizes", default="16,32,64", help="memory mode: batch sizes to compare")
    ap.add_argument("--mini-batch-size", type=int, default=8, help="memory mode: GradCache mini-batch")
    ap.add_argument("--device", default="auto", help="memory mode: auto | cpu | cuda | cuda:N")
    ap.add_argument("--trainer", default="polyret", choices=("polyret", "st"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--config",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "configs" / "quick-v2.yaml",
        help="recipe mode: the training config the candidates are timed against (default: the recipe before issue 27)",
    )
    ap.add_argument(
        "--candidate",
        action="append",
        help="recipe mode: 'FILE [KEY=VALUE ...]', a candidate recipe to time against --config (repeatable)",
    )
    args = ap.parse_args()
    if args.mode == "recipe":
        res = recipe_table(args)
        if args.out:
            args.out.write_text(
                json.dumps(
                    {"settings": vars(args) | {"out": str(args.out), "config": str(args.config)}, **res},
                    indent=2,
                    default=str,
                )
            )
        return
    if args.mode == "memory":
        res = memory_table(args)
        if args.out:
            args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": res}, indent=2))
        return
    if args.mode == "_worker":
        workers = {"ours": worker_ours, "plain": worker_plain, "memory": worker_memory, "recipe": worker_recipe}
        res = workers[args.kind](args)
        res["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(res))
        return
    results = {}
    for kind in ("plain", "ours"):
        print(
            f"running {kind} ({args.steps} steps, batch {args.batch_size}, length {args.max_length}) ...",
            file=sys.stderr,
        )
        results[kind] = run_worker(kind, args)
    ratio = results["ours"]["pairs_per_second"] / results["plain"]["pairs_per_second"]
    print("| trainer | pairs/s | s/step | peak RSS (MB) |\n|---|---|---|---|")
    for kind in ("plain", "ours"):
        r = results[kind]
        print(f"| {kind} | {r['pairs_per_second']:.2f} | {r['seconds_per_step']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(
        f"ratio ours/plain pairs/s: {ratio:.2f}x (target >= 1.0); "
        f"ours peak RSS {results['ours']['peak_rss_mb'] / 1024:.2f} GB (target <= 6 GB at batch 32, length 128)"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {"settings": vars(args) | {"out": str(args.out)}, "results": results, "ratio": ratio},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
