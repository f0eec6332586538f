"""Experiments: a grid of training runs x evaluation suites, with CIs over seeds and paired tests.

The stage modules, in pipeline order: `config` (the YAML), `grid` (variants and runs), `suites` (the
evaluator registry), `runner` (train / merge / evaluate / reuse / resume, `run_experiment`),
`compare` (seed pooling and paired tests), `report` (report.md and plots), `ablation` (what one lever
adds between two finished experiments), `demo` (`make demo`: a one-point grid and its before/after table).
"""

from __future__ import annotations

from polyret.evaluate.result import EvalResult, PerQuery, lower_is_better
from polyret.experiment.config import (
    ExperimentConfig,
    GridSection,
    SuiteConfig,
    TestsSection,
    TrainSection,
    load_experiment_config,
    suite_label,
)
from polyret.experiment.grid import RunSpec, Variant, config_hash, expand_grid
from polyret.experiment.runner import EXPERIMENT_MARKER, Runner, run_experiment
from polyret.experiment.suites import SUITES, SuiteContext, SuiteFn

__all__ = [
    "EXPERIMENT_MARKER",
    "EvalResult",
    "ExperimentConfig",
    "GridSection",
    "PerQuery",
    "RunSpec",
    "Runner",
    "SUITES",
    "SuiteConfig",
    "SuiteContext",
    "SuiteFn",
    "TestsSection",
    "TrainSection",
    "Variant",
    "config_hash",
    "expand_grid",
    "load_experiment_config",
    "lower_is_better",
    "run_experiment",
    "suite_label",
]
