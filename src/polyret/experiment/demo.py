"""What `make demo` runs: a one-point experiment grid and its before/after table on XQuAD-R.

`quick_train_demo(out_dir, config)` turns a `polyret train` YAML (configs/quick.yaml: Hybrid α=0.5)
into an experiment with one strategy, one seed and λ ∈ {1, the config's merge_weight}, runs it with
`run_experiment` in `<out>/experiment` (the untrained model is the reference row; re-running reuses
and resumes), then writes the before/after table to `<out>/report.md` and `<out>/report.json`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from polyret.config import load_train_config
from polyret.experiment.config import ExperimentConfig, GridSection, SuiteConfig, TestsSection, TrainSection
from polyret.experiment.runner import run_experiment
from polyret.io import write_json, write_text
from polyret.report import markdown_table

SUITE = "xquad-r"  # with the center-both language correction: a trained model's stored statistics; for
# the base, fitted on the (fully parallel) XQuAD-R pool itself: the training-free baseline
CORRECTION = "center-both"
RAW_SUITE = "xquad-r raw"  # the same embeddings, uncorrected
# Table column -> flat metric of the LAReQA `EvalResult`.
COLUMNS = {"mono": "mono.map", "cross": "cross.map", "multi": "multi.map", "rd": "rank_distance"}


def target_check(
    untrained: dict[str, float], model: dict[str, float], baseline: dict[str, float] | None = None
) -> dict[str, bool]:
    """What training must deliver: keep the base model's Mono (within 0.005), remove most of the
    language bias (rank distance at most half the raw base's), and -- against the training-free
    baseline (base + correction), when given -- do better on Mono, Cross and Multi."""
    out = {
        "mono_kept": model["mono"] >= untrained["mono"] - 0.005,
        "rd_halved": model["rd"] <= untrained["rd"] / 2,
        "cross_up": model["cross"] > untrained["cross"],
    }
    if baseline is not None:
        out |= {f"{k}_above_base+correction": model[k] > baseline[k] for k in ("mono", "cross", "multi")}
    return out


def table_markdown(rows: list[tuple[str, dict[str, float]]], title: str = "") -> str:
    out = [f"### {title}", ""] if title else []
    cells = [[name, f"{m['mono']:.3f}", f"{m['cross']:.3f}", f"{m['multi']:.3f}", f"{m['rd']:.0f}"] for name, m in rows]
    out.append(markdown_table(["model", "Mono mAP", "Cross mAP", "Multi mAP", "rank distance"], cells))
    return "\n".join(out) + "\n"


def demo_experiment(
    config: str | Path, *, xquad_langs: Sequence[str] | None = None, every_nth_paragraph: int = 1
) -> ExperimentConfig:
    """The one-point grid of a training config (its strategy, α, seed and merge weight)."""
    cfg = load_train_config(config, {})
    lambdas = [1.0] + ([cfg.merge_weight] if cfg.merge_weight not in (None, 1.0) else [])
    return ExperimentConfig(
        name="demo",
        description=f"{cfg.model} before / after {cfg.strategy} training ({Path(config).name})",
        base_models=[cfg.model],
        train=TrainSection(config=str(Path(config).resolve())),
        grid=GridSection(strategies=[cfg.strategy], alphas=[cfg.alpha], merge_weights=lambdas, seeds=[cfg.seed]),
        suites=[
            SuiteConfig(
                name="lareqa",
                label=label,
                data="lareqa/xquad-r",
                langs=list(xquad_langs) if xquad_langs else None,
                options={"every_nth_paragraph": every_nth_paragraph, "language_correction": lc},
            )
            for label, lc in ((SUITE, CORRECTION), (RAW_SUITE, "none"))
        ],
        tests=TestsSection(pairs="none"),
    )


def quick_train_demo(
    out_dir: str | Path,
    config: str | Path = "configs/quick.yaml",
    *,
    xquad_langs: Sequence[str] | None = None,
    every_nth_paragraph: int = 1,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Default model → XQuAD-R → quick training → XQuAD-R (tuned and merged) → before/after table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_train_config(config, {})
    exp = demo_experiment(config, xquad_langs=xquad_langs, every_nth_paragraph=every_nth_paragraph)
    t0 = time.perf_counter()
    summary = run_experiment(
        exp, out / "experiment", config_dir=Path(config).resolve().parent, show_progress=show_progress
    )
    names = {None: "untrained default model", 1.0: f"{cfg.strategy} (α={cfg.alpha}), {cfg.steps} steps"}
    rows = []
    for suite, how in ((RAW_SUITE, "raw"), (SUITE, "+ language correction")):
        for v in summary["variants"]:
            stats = summary["aggregate"][v["label"]][suite]
            name = names.get(v["merge_weight"], f"merged with the base, λ={v['merge_weight']}")
            rows.append((f"{name}, {how}", {col: stats[metric]["mean"] for col, metric in COLUMNS.items()}))
    n = len(summary["variants"])
    base_raw, base_corrected, final = rows[0][1], rows[n][1], rows[-1][1]
    report = {
        "config": cfg.summary(),
        "merge_weight": cfg.merge_weight,
        "xquad_languages": list(xquad_langs) if xquad_langs else "all",
        "xquad_every_nth_paragraph": every_nth_paragraph,
        "rows": [{"model": n, **m} for n, m in rows],
        "target": target_check(base_raw, final, base_corrected),
        "tests": [t for t in summary["tests"] if t["metric"] in COLUMNS.values()],
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / "report.json", report)
    md = table_markdown(rows, "XQuAD-R before / after (Mono, Cross, Multi mAP; mean rank distance)")
    md += (
        "\nTargets (trained + correction vs the raw base, and vs base + correction): "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in report["target"].items())
        + "\n"
    )
    md += f"\nPaired tests against the untrained model, per-language tables and plots: {out / 'experiment' / 'report.md'}\n"
    write_text(out / "report.md", md)
    return report
