"""`polyret experiment CONFIG.yaml --out DIR`: a grid of training runs × evaluation suites with
confidence intervals over seeds, paired significance tests and a report (see polyret.experiment)."""
from __future__ import annotations

from pathlib import Path

import typer

from polyret.cli.app import app, console
from polyret.experiment import run_experiment


@app.command("experiment")
def experiment_command(
    config: Path = typer.Argument(..., help="Experiment YAML (e.g. configs/experiments/smoke.yaml)."),
    out: Path = typer.Option(..., "--out", help="Experiment directory; re-running reuses finished runs and resumes interrupted ones."),
    report_only: bool = typer.Option(False, "--report-only", help="Run nothing: aggregate what is finished, rewrite summary.json and report.md."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train and evaluate a grid (strategies × α × λ × seeds) against the untrained base model."""
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
