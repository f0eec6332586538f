"""Collecting an experiment's results: per-run records, the aggregate over seeds, the paired tests,
and summary.json + report.md. Reads only what the runner's markers say is finished."""

from __future__ import annotations

import os
from typing import Any

from polyret.experiment.compare import paired_tests
from polyret.experiment.config import ExperimentConfig, suite_label
from polyret.experiment.grid import RunSpec
from polyret.experiment.layout import MERGE_CHOICE, SCHEMA_VERSION, SUMMARY_FILE, Layout
from polyret.experiment.report import write_report
from polyret.io import read_json, to_jsonable, write_json
from polyret.stats import mean_ci


def collect_run(layout: Layout, config: ExperimentConfig, run: RunSpec) -> dict[str, Any]:
    """The run's record for summary.json (only finished suites)."""
    rec = run.to_json() | {"dir": os.path.relpath(layout.run_dir(run), layout.out_dir), "results": {}}
    for suite in config.suites:
        done = layout.suite_result(run, suite)
        if done is not None:
            rec["results"][suite_label(suite)] = done.metrics
    rec["complete"] = len(rec["results"]) == len(config.suites)
    if (layout.run_dir(run) / MERGE_CHOICE).is_file():
        rec["merge_weight_chosen"] = read_json(layout.run_dir(run) / MERGE_CHOICE)["weight"]
    return rec


def _aggregate(config: ExperimentConfig, variants: list, by_variant: dict[str, list], with_base: bool) -> dict:
    """variant label -> suite label -> metric -> mean and 95% CI over its seeds."""
    aggregate: dict[str, dict[str, dict[str, dict]]] = {}
    for var in variants:
        label = var.label(with_base)
        aggregate[label] = {}
        for suite in config.suites:
            sl = suite_label(suite)
            values: dict[str, list[float]] = {}
            for _, rec in by_variant.get(label, []):
                for m, v in rec["results"].get(sl, {}).items():
                    values.setdefault(m, []).append(v)
            aggregate[label][sl] = {m: mean_ci(vs).to_json() for m, vs in values.items()}
    return aggregate


def _suites_meta(layout: Layout, config: ExperimentConfig, runs: list[RunSpec]) -> dict[str, dict]:
    """Per suite: its headline metrics and per-language tables, from the first run that finished it."""
    meta = {}
    for suite in config.suites:
        done = next((layout.suite_result(r, suite) for r in runs if layout.suite_done(r, suite)), None)
        meta[suite_label(suite)] = (
            {"name": suite.name, "headline": done.headline, "per_language": done.per_language}
            if done is not None
            else {"name": suite.name, "headline": [], "per_language": {}}
        )
    return meta


def summarize(layout: Layout, config: ExperimentConfig, variants: list, runs: list[RunSpec]) -> dict[str, Any]:
    """The experiment's summary: variants, suites, run records, aggregate and paired tests."""
    with_base = len(config.base_models) > 1
    records = [collect_run(layout, config, r) for r in runs]
    by_variant: dict[str, list[tuple[RunSpec, dict]]] = {}
    for run, rec in zip(runs, records):
        by_variant.setdefault(run.label, []).append((run, rec))
    variants_meta = [
        {
            "label": v.label(with_base),
            "base_model": v.base_model,
            "strategy": v.strategy,
            "alpha": v.alpha,
            "merge_weight": v.merge_weight,
            "seeds": [r.seed for r, _ in by_variant.get(v.label(with_base), [])],
        }
        for v in variants
    ]
    return {
        "schema": SCHEMA_VERSION,
        "name": config.name,
        "description": config.description,
        "config": config.model_dump(mode="json"),
        "variants": variants_meta,
        "suites": _suites_meta(layout, config, runs),
        "runs": records,
        "aggregate": _aggregate(config, variants, by_variant, with_base),
        "tests": paired_tests(config, variants, runs, layout.per_query),
    }


def write_summary(
    layout: Layout,
    config: ExperimentConfig,
    variants: list,
    runs: list[RunSpec],
    counts: dict[str, int],
    wall_s: float | None,
) -> dict[str, Any]:
    """Aggregate whatever is finished; write summary.json, report.md and plots; returns the summary."""
    summary = summarize(layout, config, variants, runs)
    summary["timing"] = {"wall_s": wall_s}
    summary["counts"] = dict(counts)
    summary = to_jsonable(summary)  # what summary.json holds (undefined numbers are None)
    write_json(layout.out_dir / SUMMARY_FILE, summary)
    write_report(summary, layout.out_dir)
    return summary
