"""`polyret experiment CONFIG.yaml --out DIR`: a grid of training runs × evaluation suites with
confidence intervals over seeds, paired significance tests and a report (see polyret.experiment);
`polyret ablation A B --suite S`: what one lever adds between two finished experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from polyret.cli.app import app, console, split_csv, use_device
from polyret.cli.options import Bootstrap, Device, LabelA, LabelB, OutDir, Overwrite, Permutations, Progress
from polyret.io import OutputDir


@app.command("experiment")
def experiment_command(
    config: Path = typer.Argument(..., help="Experiment YAML (e.g. configs/experiments/smoke.yaml)."),
    out: OutDir = ...,
    report_only: bool = typer.Option(
        False, "--report-only", help="Run nothing: aggregate what is finished, rewrite summary.json and report.md."
    ),
    progress: Progress = True,
    device: Device = None,
) -> None:
    """Train and evaluate a grid (strategies × α × λ × seeds) against the untrained base model.

    --out is the experiment folder; re-running reuses finished runs and resumes interrupted ones."""
    from polyret.experiment import run_experiment

    use_device(device)  # every model the grid trains or evaluates
    summary = run_experiment(config, out, report_only=report_only, show_progress=progress)
    done = sum(1 for r in summary["runs"] if r["complete"])
    wall = summary["timing"]["wall_s"]
    console.print(
        f"[green]experiment {summary['name']}[/]: {done}/{len(summary['runs'])} runs complete"
        + (f" in {wall:.0f} s" if wall is not None else "")
        + f", {len(summary['tests'])} paired tests"
    )
    # Headline numbers: first two headline metrics of each suite, per variant.
    for suite, meta in summary["suites"].items():
        for metric in (meta.get("headline") or [])[:3]:
            cells = []
            for label, per_suite in summary["aggregate"].items():
                stat = per_suite.get(suite, {}).get(metric)
                if stat:
                    cells.append(f"{label} {stat['mean']:.4g}")
            console.print(f"  {suite} {metric}: " + "; ".join(cells), markup=False)
    print(out / "report.md")


@app.command("ablation")
def ablation_command(
    a: Path = typer.Argument(..., help="Finished experiment dir of side a (e.g. with the lever)."),
    b: Path = typer.Argument(
        ..., help="Finished experiment dir of side b (e.g. without it); may be a itself with --suite-b."
    ),
    suite: str = typer.Option(
        ..., "--suite", help="Suite label of side a (as in its report, e.g. 'xquad-r corrected')."
    ),
    suite_b: Optional[str] = typer.Option(None, "--suite-b", help="Suite label of side b (default: --suite)."),
    variants: Optional[str] = typer.Option(
        None, "--variants", help="Comma-separated variant labels (default: all finished on both sides)."
    ),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated per-query metrics (default: all)."),
    label_a: LabelA = "a",
    label_b: LabelB = "b",
    out: OutDir = ...,
    n_permutations: Permutations = 10000,
    n_bootstrap: Bootstrap = 2000,
    overwrite: Overwrite = False,
) -> None:
    """What one lever adds: side a − side b for every variant of two finished experiments (or two suites
    of one), paired over the same queries, seeds pooled, Holm within each metric. Writes ablation.json,
    ablation.md and ablation.png to --out."""
    from polyret.experiment.ablation import ablation, ablation_markdown, write_ablation

    target = OutputDir(out, "ablation", overwrite=overwrite, inputs=[a, b])
    result = ablation(
        a,
        b,
        suite=suite,
        suite_b=suite_b,
        variants=split_csv(variants),
        metrics=split_csv(metrics),
        n_permutations=n_permutations,
        n_bootstrap=n_bootstrap,
    )
    with target:
        write_ablation(result, target.path, label_a, label_b)
    print(ablation_markdown(result, label_a, label_b))  # plain: a console would wrap the table's rows
    print(out / "ablation.md")
