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


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not installed")
def test_two_process_gloo_run_agrees_on_batch_type_and_language(tiny_model, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny_model.save(str(model_dir))
    data = write_synthetic(tmp_path / "groups.jsonl", n=60)
    # GradCache (mini_batch_size) + the cross-rank gather: the newest loss path, under real DDP.
    cfg = tiny_overrides(model_dir, data, steps=6, batch_size=3, log_batches=True, eval_steps=6, save_steps=6,
                         mini_batch_size=2)
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "polyret", "train",
         "--config", str(config), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 6 and (out / "model" / "model.safetensors").exists()
    # In-batch negatives come from both ranks (the default under DDP), on the CPU with gloo.
    assert run["in_batch_negatives"] == {"across_ranks": True, "pool_rows": 6, "mini_batch_size": 2}
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
