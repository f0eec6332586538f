"""GPU check: does polyret train and encode correctly and fast on this machine's CUDA GPU?

    bash benchmarks/gpu_check.sh            # what to run on a CUDA machine (< 5 min); skips without a GPU
    python benchmarks/gpu_check.py --device cuda [--model default] [--out gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --quick   # the same checks against the CPU (tests the script)

Four checks, each printed as a line, then a summary table (and JSON with --out):

1. same run, CPU vs GPU, float32 on both, dropout off (the two devices' random generators differ): a
   short training run (same data, seed, sampler) on the CPU
   and on `--device`; the logged training losses must agree within LOSS_TOL at every logged step,
   and the two final models' embeddings of XQuAD-R sentences must agree (cosine >= EMB_COS_TOL);
2. mixed precision on the GPU: a 50-step run with the automatic precision (bf16 where the GPU
   supports it, else fp16 with loss scaling): finite losses, and the loss at the end below the start;
3. encode XQuAD-R (all candidate sentences) on the GPU with the automatic precision: texts/s, and
   agreement with float32 CPU embeddings of a sample (cosine >= AMP_COS_TOL);
4. throughput vs CPU: encode texts/s and training pairs/s, GPU / CPU.

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Tolerances (stated here, printed with every result).
LOSS_TOL = 2e-2  # |loss_cpu - loss_gpu| per logged step, fp32 on both (kernel order differs, not maths)
EMB_COS_TOL = 0.999  # min cosine between CPU- and GPU-trained fp32 models' embeddings of the same text
AMP_COS_TOL = 0.99  # min cosine between mixed-precision GPU and fp32 CPU embeddings of the same text


def _train(device: str, *, steps: int, batch: int, max_len: int, model: str, bf16, out: Path) -> dict:
    from polyret.config import TrainConfig
    from polyret.train import RUN_JSON, TRAIN_LOG, train

    cfg = TrainConfig(
        model=model,
        steps=steps,
        batch_size=batch,
        max_seq_length=max_len,
        validation_groups=0,
        keep_best=False,
        logging_steps=1,
        save_steps=10**6,
        save_total_limit=1,
        warmup_ratio=0.1,
        bf16=bf16,
        device=device,
        seed=7,
    )
    t0 = time.perf_counter()
    final = train(cfg, out, show_progress=False, device=device)
    wall = time.perf_counter() - t0
    log = [json.loads(x) for x in (out / TRAIN_LOG).read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in log if r.get("event") == "log" and "loss" in r}
    run = json.loads((out / RUN_JSON).read_text())
    return {
        "losses": losses,
        "wall_s": wall,
        "pairs_per_second": run["pairs_per_second"],
        "model": str(final),
        "runtime": run["runtime"],
    }


def _without_dropout(model: str, out: Path) -> str:
    """A copy of `model` with every dropout probability of its config at 0, for check 1.

    The CPU and CUDA random generators draw different dropout masks from the same seed, so with dropout
    on, the "same" run differs across devices by more than any kernel difference (CPU against CPU it
    agrees exactly, which is why only a GPU run would show it)."""
    from polyret.model import load_model

    m = load_model(model, device="cpu")
    first = m[0]
    config = (getattr(first, "auto_model", None) or first.model).config
    for key, value in list(config.to_dict().items()):
        if "dropout" in key and isinstance(value, float):
            setattr(config, key, 0.0)
    m.save(str(out))
    return str(out)


def _encode(model_dir: str, texts: list[str], device: str, bf16) -> tuple[np.ndarray, float]:
    from polyret.encode import encode_texts
    from polyret.model import load_model

    m = load_model(model_dir, device=device)
    encode_texts(m, texts[:64], "passage", bf16=bf16, show_progress=False)  # warm-up (CUDA context, kernels)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    emb = encode_texts(m, texts, "passage", bf16=bf16, show_progress=False)
    return emb, len(texts) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device", default="cuda", help="the accelerator to check (cuda, cuda:N; cpu only to test this script)"
    )
    ap.add_argument("--model", default="default")
    ap.add_argument("--quick", action="store_true", help="tiny settings (testing the script itself)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from polyret import runtime
    from polyret.data.lareqa import load_lareqa

    device = runtime.resolve_device(args.device)
    amp = runtime.precision_for(device, "auto")
    q = args.quick
    same_steps, amp_steps = (3, 4) if q else (10, 50)
    batch, max_len = (8, 32) if q else (16, 64)
    print(
        f"polyret GPU check: device {device} ({runtime.device_name(device)}), automatic precision {amp}; "
        f"torch {__import__('torch').__version__}"
    )
    checks: dict[str, dict] = {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. same run on CPU and on the device, fp32 on both, dropout off (see _without_dropout)
        same_model = _without_dropout(args.model, tmp / "no-dropout")
        cpu_run = _train(
            "cpu", steps=same_steps, batch=batch, max_len=max_len, model=same_model, bf16=False, out=tmp / "cpu"
        )
        dev_run = _train(
            device, steps=same_steps, batch=batch, max_len=max_len, model=same_model, bf16=False, out=tmp / "dev"
        )
        steps = sorted(set(cpu_run["losses"]) & set(dev_run["losses"]))
        diffs = [abs(cpu_run["losses"][s] - dev_run["losses"][s]) for s in steps]
        data = load_lareqa("xquad-r")
        cands = data.candidate_texts("sentence")
        sample_idx = list(range(0, len(cands), max(1, len(cands) // (64 if q else 512))))
        sample = [cands[i] for i in sample_idx]
        e_cpu, cpu_tps = _encode(cpu_run["model"], sample, "cpu", False)
        e_dev, _ = _encode(dev_run["model"], sample, device, False)
        cos = float(np.min(np.sum(e_cpu * e_dev, axis=1)))
        passed = len(steps) == same_steps and max(diffs) <= LOSS_TOL and cos >= EMB_COS_TOL
        ok &= passed
        checks["same_run_cpu_vs_device"] = {
            "steps": steps,
            "loss_cpu": [cpu_run["losses"][s] for s in steps],
            "loss_device": [dev_run["losses"][s] for s in steps],
            "max_loss_diff": max(diffs),
            "loss_tol": LOSS_TOL,
            "min_embedding_cosine": cos,
            "cosine_tol": EMB_COS_TOL,
            "passed": passed,
        }
        print(
            f"[{'PASS' if passed else 'FAIL'}] same {same_steps}-step fp32 run, CPU vs {device}: max |Δloss| "
            f"{max(diffs):.2e} (tol {LOSS_TOL}), min embedding cosine {cos:.5f} (tol {EMB_COS_TOL})"
        )

        # 2. mixed precision training on the device
        amp_run = _train(
            device,
            steps=amp_steps,
            batch=32 if not q else 8,
            max_len=max_len,
            model=args.model,
            bf16="auto",
            out=tmp / "amp",
        )
        ls = [amp_run["losses"][s] for s in sorted(amp_run["losses"])]
        k = max(1, len(ls) // 5)
        finite = all(np.isfinite(ls))
        falling = float(np.mean(ls[-k:])) < float(np.mean(ls[:k]))
        passed = finite and (falling or q)
        ok &= passed
        checks["mixed_precision_training"] = {
            "precision": amp_run["runtime"]["precision"],
            "steps": amp_steps,
            "first_losses": ls[:k],
            "last_losses": ls[-k:],
            "pairs_per_second": amp_run["pairs_per_second"],
            "passed": passed,
        }
        print(
            f"[{'PASS' if passed else 'FAIL'}] {amp_steps}-step {amp_run['runtime']['precision']} run on {device}: "
            f"loss {np.mean(ls[:k]):.3f} -> {np.mean(ls[-k:]):.3f}, {amp_run['pairs_per_second']} pairs/s"
        )

        # 3. encode XQuAD-R with the automatic precision
        texts = sample if q else cands
        e_amp, dev_tps = _encode(args.model, texts, device, "auto")
        e_ref, _ = _encode(args.model, sample, "cpu", False)
        idx = list(range(len(sample))) if q else sample_idx
        amp_cos = float(np.min(np.sum(e_amp[idx] * e_ref, axis=1)))
        passed = amp_cos >= AMP_COS_TOL
        ok &= passed
        checks["encode_xquad_r"] = {
            "texts": len(texts),
            "precision": amp,
            "texts_per_second": dev_tps,
            "min_cosine_vs_cpu_fp32": amp_cos,
            "cosine_tol": AMP_COS_TOL,
            "passed": passed,
        }
        print(
            f"[{'PASS' if passed else 'FAIL'}] XQuAD-R encode on {device} ({amp}): {len(texts)} sentences, "
            f"{dev_tps:.0f} texts/s; min cosine vs CPU fp32 {amp_cos:.4f} (tol {AMP_COS_TOL})"
        )

        # 4. throughput vs CPU
        checks["throughput_vs_cpu"] = {
            "encode_texts_per_second": {"cpu_fp32": cpu_tps, "device": dev_tps, "ratio": dev_tps / cpu_tps},
            "train_pairs_per_second_fp32": {
                "cpu": cpu_run["pairs_per_second"],
                "device": dev_run["pairs_per_second"],
                "ratio": dev_run["pairs_per_second"] / cpu_run["pairs_per_second"],
            },
        }
        t = checks["throughput_vs_cpu"]
        print(
            f"[INFO] throughput {device} / CPU: encode {t['encode_texts_per_second']['ratio']:.1f}x "
            f"({dev_tps:.0f} vs {cpu_tps:.0f} texts/s), fp32 training "
            f"{t['train_pairs_per_second_fp32']['ratio']:.1f}x "
            f"({dev_run['pairs_per_second']} vs {cpu_run['pairs_per_second']} pairs/s)"
        )
    print("| check | result |\n|---|---|")
    for name, c in checks.items():
        print(f"| {name} | {'PASS' if c.get('passed', True) else 'FAIL'} |")
    if args.out:
        args.out.write_text(json.dumps({"device": device, "precision": amp, "checks": checks}, indent=2, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
