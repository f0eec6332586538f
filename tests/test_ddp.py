"""DDP on CPU: `torchrun --nproc_per_node=2 -m polyret train` (gloo) on the tiny model, with the
cross-rank in-batch gather (default) and GradCache (mini_batch_size).

Each rank logs what it trained on per step (batch_log.rank<R>.jsonl); every rank of a step must
draw the same batch type (and, for X-X-mono, the same language), and the ranks' rows must come
from different groups (one global group-aware batch split across ranks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from train_helpers import tiny_overrides, write_synthetic


def _step_one_losses(model_dir: Path, data: Path, out: Path) -> tuple[float, float]:
    """(InfoNCE over the 6 rows of both ranks, mean of each rank's InfoNCE over its own 3 rows) for
    step 1 of the run, at the base weights, scale 1/τ = 20, from batch_log's (group, languages) rows."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    groups = {g["id"]: g for g in map(json.loads, data.read_text().splitlines())}
    rows = [
        row
        for r in (0, 1)
        for row in json.loads((out / f"batch_log.rank{r}.jsonl").read_text().splitlines()[0])["rows"]
    ]
    model = SentenceTransformer(str(model_dir), device="cpu")
    q = model.encode([groups[g]["queries"][ql] for g, ql, _ in rows], prompt="query: ", normalize_embeddings=True)
    p = model.encode([groups[g]["positives"][pl] for g, _, pl in rows], prompt="passage: ", normalize_embeddings=True)

    def info_nce(qs, ps):
        logits = 20.0 * qs @ ps.T
        logits = logits - logits.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(logits).sum(axis=1)) - np.diag(logits)))

    return info_nce(q, p), (info_nce(q[:3], p[:3]) + info_nce(q[3:], p[3:])) / 2


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not installed"
)
def test_two_process_gloo_run_agrees_on_batch_type_and_language(tiny_model, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny_model.save(str(model_dir))
    # No dropout: the training forward of step 1 is then an eval-mode encode, which the loss check recomputes.
    bert = json.loads((model_dir / "config.json").read_text())
    bert.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model_dir / "config.json").write_text(json.dumps(bert))
    data = write_synthetic(tmp_path / "groups.jsonl", n=60)
    # GradCache (mini_batch_size) + the cross-rank gather: the newest loss path, under real DDP.
    cfg = tiny_overrides(
        model_dir, data, steps=6, batch_size=3, log_batches=True, eval_steps=6, save_steps=6, mini_batch_size=2
    )
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "polyret",
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 6 and (out / "model" / "model.safetensors").exists()
    # In-batch negatives come from both ranks (the default under DDP), on the CPU with gloo: the logged
    # step-1 loss (the base weights, averaged over ranks) is the InfoNCE of all 6 rows against all 6
    # positives, recomputed here from the logged rows with sentence-transformers alone.
    gathered, per_rank = _step_one_losses(model_dir, data, out)
    step1 = next(
        r["loss"]
        for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())
        if r.get("step") == 1 and "loss" in r
    )
    assert step1 == pytest.approx(gathered, abs=0.03)  # bf16 autocast on this CPU
    assert abs(step1 - per_rank) > 0.1, "the rank-local loss must differ for the check above to mean anything"
    assert run["runtime"]["device"] == "cpu" and run["runtime"]["world_size"] == 2
    logs = [[json.loads(l) for l in (out / f"batch_log.rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [b["step"] for b in logs[0]] == [b["step"] for b in logs[1]] == [1, 2, 3, 4, 5, 6]
    types = set()
    for b0, b1 in zip(*logs):
        assert (b0["rank"], b1["rank"]) == (0, 1)
        assert b0["batch_type"] == b1["batch_type"] and b0["batch_type"] in ("x-x-mono", "x-y")
        assert b0["lang"] == b1["lang"]
        assert not set(b0["groups"]) & set(b1["groups"])  # one global batch, split across ranks
        types.add(b0["batch_type"])
    assert types == {"x-x-mono", "x-y"}, "6 hybrid steps with seed 42 draw both batch types"
    meta = json.loads((out / "model" / "polyret_training.json").read_text())
    assert meta["world_size"] == 2
