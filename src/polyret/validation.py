"""Choices made on a training run's held-out groups, never on an evaluation set: the λ rule.

- `validation_pool(run_dir)`: the LAReQA-style pool built from the groups a run held out
  (`validation_groups.jsonl`): every query of a group is relevant to every positive of that group,
  in any language; the groups' hard negatives (a run built with `negatives: same-paragraph`: the other
  sentences of the answer's paragraph) are candidates relevant to none, so the answer sentence must
  beat its neighbours as in XQuAD-R. Same Mono / Cross / Multi / rank-distance metrics as XQuAD-R, on
  data never trained on and never an evaluation set.
- `pool_metrics(model, pool)`: those numbers for one model (the LAReQA evaluator's `EvalResult`).
- `select_merge_weight(...)`: the λ rule, applied to pool numbers only.
- `choose_merge_weight(base, tuned, run_dir, weights, work_dir)`: merges at every candidate λ,
  scores each on the pool, applies the rule; what `grid.merge_weights: [auto]` of an experiment runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from polyret.data.groups import read_groups_jsonl
from polyret.data.lareqa import LareqaDataset
from polyret.encode import encode_texts
from polyret.errors import PolyretError
from polyret.evaluate.lareqa_eval import correct_lareqa_embeddings, lareqa_result, score_lareqa
from polyret.model import load_model
from polyret.train import VALIDATION_GROUPS

# The numbers the λ rule reads (flat `EvalResult.metrics` keys).
MONO, MULTI = "mono.map", "multi.map"


def validation_pool(run_dir: str | Path, max_groups: int | None = None) -> LareqaDataset:
    """The held-out groups of a training run as a LAReQA pool (optionally only the first N)."""
    path = Path(run_dir) / VALIDATION_GROUPS
    if not path.is_file():
        raise PolyretError(f"{path}: not found; the run held out no validation groups (validation_groups: 0?)")
    groups = read_groups_jsonl(path)
    if max_groups:
        groups = groups[:max_groups]
    if not groups:
        raise PolyretError(f"{path}: no held-out groups")
    return LareqaDataset.from_groups(groups, name=f"validation pool ({len(groups)} held-out groups)")


def pool_metrics(
    model_or_path,
    pool: LareqaDataset,
    *,
    max_length: int | None = 64,
    show_progress: bool = False,
    language_correction="none",
) -> dict[str, float]:
    """LAReQA metrics of a model on a pool (flat `EvalResult.metrics`; no caching, no files), after
    `language_correction` (see `polyret.correction.resolve_correction`)."""
    model = load_model(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    q = encode_texts(model, pool.question_texts(), kind="query", max_length=max_length, show_progress=show_progress)
    c = encode_texts(model, pool.candidate_texts(), kind="passage", max_length=max_length, show_progress=show_progress)
    q, c, _ = correct_lareqa_embeddings(q, c, pool, language_correction, model=model)
    results, ranks = score_lareqa(q, c, pool, return_ranks=True)
    return lareqa_result(results, ranks, pool).metrics


def select_merge_weight(
    untrained: dict[str, float], by_weight: dict[float, dict[str, float]], mono_tolerance: float = 0.01
) -> float:
    """λ rule on the validation pool: the highest Multi mAP among weights whose Mono mAP stays within
    `mono_tolerance` of the untrained model's; if none does, the weight with the best Mono."""
    if not by_weight:
        raise PolyretError("select_merge_weight: no candidate weights")
    ok = {w: m for w, m in by_weight.items() if m[MONO] >= untrained[MONO] - mono_tolerance}
    if ok:
        return max(ok, key=lambda w: (ok[w][MULTI], -w))
    return max(by_weight, key=lambda w: (by_weight[w][MONO], -w))


def choose_merge_weight(
    base: str,
    tuned: str | Path,
    run_dir: str | Path,
    weights: Sequence[float],
    work_dir: str | Path,
    *,
    merge_fn: Callable | None = None,
    max_groups: int | None = None,
    mono_tolerance: float = 0.01,
) -> dict:
    """Merge base and tuned at each λ in `weights` (into `work_dir`, removed afterwards), score each
    and the base on the run's validation pool, apply `select_merge_weight`. Returns
    `{"weight", "untrained", "by_weight", "pool"}` (the numbers the choice was made on)."""
    if merge_fn is None:
        from polyret.merge import merge_models as merge_fn  # imports torch

    pool = validation_pool(run_dir, max_groups)
    untrained = pool_metrics(base, pool)
    by_weight: dict[float, dict[str, float]] = {}
    work = Path(work_dir)
    try:
        for w in weights:
            if w == 1.0:
                by_weight[w] = pool_metrics(tuned, pool)
                continue
            merged = work / f"lambda-{w:g}"
            if merged.exists():
                shutil.rmtree(merged)
            merge_fn(base, tuned, w, merged)
            by_weight[w] = pool_metrics(merged, pool)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    chosen = select_merge_weight(untrained, by_weight, mono_tolerance)
    return {
        "weight": chosen,
        "untrained": untrained,
        "by_weight": {str(w): m for w, m in by_weight.items()},
        "pool": pool.name,
        "rule": f"highest {MULTI} with {MONO} >= untrained - {mono_tolerance}",
    }
