"""Synthetic parallel groups and tiny-run configs shared by the training tests."""

from __future__ import annotations

import random
from pathlib import Path

from polyret.data.groups import ParallelGroup, write_groups_jsonl

LANGS = ("de", "es", "zh")
WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
    "upsilon phi chi psi omega river mountain city harbour castle forest"
).split()


def synthetic_groups(n: int = 60, langs=LANGS, seed: int = 0) -> list[ParallelGroup]:
    """n groups, each with a query and a positive in every language (distinct texts per group)."""
    rng = random.Random(seed)
    groups = []
    for i in range(n):
        topic = " ".join(rng.choice(WORDS) for _ in range(5))
        groups.append(
            ParallelGroup(
                id=f"g{i}",
                queries={l: f"{l} question {i}: {topic}?" for l in langs},
                positives={l: f"{l} passage {i}. {topic} {rng.choice(WORDS)}." for l in langs},
                source="synthetic",
            )
        )
    return groups


def write_synthetic(path: Path, n: int = 60) -> Path:
    write_groups_jsonl(synthetic_groups(n), path)
    return path


def tiny_overrides(model_dir: Path, data: Path, **kw) -> dict:
    """A run of a few steps on the tiny model; checkpoints every 2 steps, every checkpoint kept."""
    base = dict(
        model=str(model_dir),
        data=[str(data)],
        steps=6,
        batch_size=4,
        lr=1e-3,
        validation_groups=12,
        eval_steps=2,
        save_steps=2,
        save_total_limit=50,
        keep_best=False,
        logging_steps=1,
        max_seq_length=32,
        warmup_ratio=0.0,
    )
    base.update(kw)
    return base
