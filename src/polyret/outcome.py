"""Recipe choice on held-out training groups, and the before/after table on XQuAD-R.

- `validation_pool(run_dir)`: the LAReQA-style pool built from the groups a run held out
  (`validation_groups.jsonl`): every query of a group is relevant to every positive of that group,
  in any language. Same Mono / Cross / Multi / rank-distance metrics as XQuAD-R, on data never
  trained on and never an evaluation set -- this is where steps and λ are chosen.
- `pool_metrics(model, pool)`: those four numbers for one model.
- `select_merge_weight(...)`: the λ rule (below), applied to pool numbers only.
- `xquad_metrics(model)`: the same four numbers on XQuAD-R (the reported evaluation).
- `quick_train_demo(out_dir)`: what `make demo` runs -- evaluate the default model, train
  configs/quick.yaml (Hybrid α=0.5), evaluate the tuned and the merged model, write the
  before/after table to `<out>/report.md` and `<out>/report.json`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from polyret.errors import PolyretError

METRIC_KEYS = ("mono", "cross", "multi", "rd")


def _model(model_or_path):
    if isinstance(model_or_path, (str, Path)):
        from polyret.model import load_model

        return load_model(str(model_or_path))
    return model_or_path


def _summary(results: dict) -> dict[str, float]:
    return {
        "mono": float(results["mono"]["map"]),
        "cross": float(results["cross"]["map"]),
        "multi": float(results["multi"]["map"]),
        "rd": float(results["rank_distance"]["mean"]),
    }


def validation_pool(run_dir: str | Path, max_groups: int | None = None):
    """The held-out groups of a training run as a LAReQA pool (optionally only the first N)."""
    from polyret.data.groups import read_groups_jsonl
    from polyret.data.lareqa import LareqaDataset
    from polyret.train import VALIDATION_GROUPS

    path = Path(run_dir) / VALIDATION_GROUPS
    if not path.is_file():
        raise PolyretError(f"{path}: not found; the run held out no validation groups (validation_groups: 0?)")
    groups = read_groups_jsonl(path)
    if max_groups:
        groups = groups[:max_groups]
    if not groups:
        raise PolyretError(f"{path}: no held-out groups")
    return LareqaDataset.from_groups(groups, name=f"validation pool ({len(groups)} held-out groups)")


def pool_metrics(model_or_path, pool, *, max_length: int | None = 64, show_progress: bool = False,
                 language_correction="none") -> dict[str, float]:
    """Mono / Cross / Multi mAP and mean rank distance of a model on a pool (no caching, no files),
    after `language_correction` (see `polyret.correction.resolve_correction`)."""
    from polyret.encode import encode_texts
    from polyret.evaluate.lareqa import correct_lareqa_embeddings, score_lareqa

    model = _model(model_or_path)
    q = encode_texts(model, pool.question_texts(), kind="query", max_length=max_length, show_progress=show_progress)
    c = encode_texts(model, pool.candidate_texts(), kind="passage", max_length=max_length, show_progress=show_progress)
    q, c, _ = correct_lareqa_embeddings(q, c, pool, language_correction, model=model)
    return _summary(score_lareqa(q, c, pool))


def subset_paragraphs(dataset, every: int):
    """Every `every`-th paragraph (by sorted paragraph id, the same in all languages): its questions
    and all its candidates in every language. A smaller, still 11-way parallel pool for machines
    where encoding all of XQuAD-R per model does not fit; numbers are not comparable to the full
    pool's (fewer distractors), only to each other."""
    from polyret.data.lareqa import LareqaDataset

    if every <= 1:
        return dataset
    pids = sorted({c.paragraph_id for c in dataset.candidates})
    keep = set(pids[::every])
    new_index = {}
    cands = []
    for i, c in enumerate(dataset.candidates):
        if c.paragraph_id in keep:
            new_index[i] = len(cands)
            cands.append(c)
    questions, relevant = [], []
    for q, rel in zip(dataset.questions, dataset.relevant):
        kept = [new_index[int(i)] for i in rel if int(i) in new_index]
        if kept and len(kept) == len(rel):
            questions.append(q)
            relevant.append(kept)
    return LareqaDataset(
        f"{dataset.name} (every {every}th paragraph: {len(keep)} of {len(pids)})", questions, cands, relevant,
        dataset.languages,
    )


def xquad_metrics(
    model_or_path,
    *,
    langs: Sequence[str] | None = None,
    every_nth_paragraph: int = 1,
    show_progress: bool = True,
    language_correction="auto",
) -> dict[str, float]:
    """The four numbers on XQuAD-R (all 11 languages unless `langs`; all paragraphs unless
    `every_nth_paragraph` > 1); embeddings cached on disk, keyed by model identity."""
    from polyret.data.lareqa import load_lareqa
    from polyret.evaluate.lareqa import evaluate_lareqa
    from polyret.paths import data_path

    dataset = subset_paragraphs(load_lareqa(data_path("lareqa", "xquad-r"), langs=langs), every_nth_paragraph)
    return _summary(evaluate_lareqa(_model(model_or_path), dataset, show_progress=show_progress,
                                    language_correction=language_correction))


def select_merge_weight(
    untrained: dict[str, float], by_weight: dict[float, dict[str, float]], mono_tolerance: float = 0.01
) -> float:
    """λ rule on the validation pool: the highest Multi mAP among weights whose Mono stays within
    `mono_tolerance` of the untrained model's; if none does, the weight with the best Mono."""
    if not by_weight:
        raise PolyretError("select_merge_weight: no candidate weights")
    ok = {w: m for w, m in by_weight.items() if m["mono"] >= untrained["mono"] - mono_tolerance}
    if ok:
        return max(ok, key=lambda w: (ok[w]["multi"], -w))
    return max(by_weight, key=lambda w: (by_weight[w]["mono"], -w))


def target_check(untrained: dict[str, float], model: dict[str, float]) -> dict[str, bool]:
    """The issue's target: Multi +0.20, rank distance ≤ half, Mono within 0.01, Cross up."""
    return {
        "multi_+0.20": model["multi"] >= untrained["multi"] + 0.20,
        "rd_halved": model["rd"] <= untrained["rd"] / 2,
        "mono_within_0.01": model["mono"] >= untrained["mono"] - 0.01,
        "cross_up": model["cross"] > untrained["cross"],
    }


def table_markdown(rows: list[tuple[str, dict[str, float]]], title: str = "") -> str:
    out = [f"### {title}", ""] if title else []
    out += ["| model | Mono mAP | Cross mAP | Multi mAP | rank distance |", "|---|---|---|---|---|"]
    for name, m in rows:
        out.append(f"| {name} | {m['mono']:.3f} | {m['cross']:.3f} | {m['multi']:.3f} | {m['rd']:.0f} |")
    return "\n".join(out) + "\n"


def quick_train_demo(
    out_dir: str | Path,
    config: str | Path = "configs/quick.yaml",
    *,
    xquad_langs: Sequence[str] | None = None,
    every_nth_paragraph: int = 1,
    show_progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Default model → XQuAD-R → quick Hybrid training → XQuAD-R (tuned and merged) → report.

    Writes `<out>/report.md` (the before/after table) and `<out>/report.json`; the training run
    lives in `<out>/train` (re-running resumes / reuses it).
    """
    from polyret.config import load_train_config
    from polyret.train import MODEL_DIR, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_train_config(config, {})
    t0 = time.perf_counter()
    before = xquad_metrics(cfg.model, langs=xquad_langs, every_nth_paragraph=every_nth_paragraph, show_progress=show_progress)
    run_dir = out / "train"
    final = train(cfg, run_dir, resume=run_dir.exists(), show_progress=show_progress) if resume else train(
        cfg, run_dir, show_progress=show_progress
    )
    tuned = xquad_metrics(run_dir / MODEL_DIR, langs=xquad_langs, every_nth_paragraph=every_nth_paragraph, show_progress=show_progress)
    rows = [("untrained default model", before), (f"{cfg.strategy} (α={cfg.alpha}), {cfg.steps} steps", tuned)]
    merged = None
    if cfg.merge_weight is not None:
        merged = xquad_metrics(final, langs=xquad_langs, every_nth_paragraph=every_nth_paragraph, show_progress=show_progress)
        rows.append((f"merged with the base, λ={cfg.merge_weight}", merged))
    best = merged or tuned
    report = {
        "config": cfg.summary(),
        "merge_weight": cfg.merge_weight,
        "xquad_languages": list(xquad_langs) if xquad_langs else "all",
        "xquad_every_nth_paragraph": every_nth_paragraph,
        "rows": [{"model": n, **m} for n, m in rows],
        "target": target_check(before, best),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = table_markdown(rows, "XQuAD-R before / after (Mono, Cross, Multi mAP; mean rank distance)")
    md += "\nTarget (Multi +0.20, rank distance ≤ half, Mono within 0.01, Cross up): " + ", ".join(
        f"{k} {'yes' if v else 'no'}" for k, v in report["target"].items()
    ) + "\n"
    (out / "report.md").write_text(md, encoding="utf-8")
    return report
