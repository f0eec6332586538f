"""The experiment YAML (`polyret experiment CONFIG.yaml`): pydantic models, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from polyret.config import Strategy, read_yaml_mapping
from polyret.errors import PolyretError


class SuiteConfig(BaseModel):
    """One evaluation suite. `name` picks the evaluator from the registry; the rest are its inputs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="evaluator: lareqa | heldout | xnli | tatoeba | beir (or a registered plugin)")
    label: str | None = Field(None, description="column/section name in reports (default: name, or name:data-dir)")
    data: str | None = Field(
        None, description="data dir: absolute, or relative to the experiment file's dir, else to the data dir"
    )
    langs: list[str] | None = Field(None, description="languages to evaluate (None = the evaluator's default)")
    split: str | None = Field(None, description="split (XNLI: dev | test; BEIR: test ...)")
    options: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the evaluator")


class TrainSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(None, description="a `polyret train` YAML (relative to the experiment file)")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig keys applied to every run (steps, batch_size, lr, ...)"
    )
    keep_checkpoints: bool = Field(
        False, description="keep trainer checkpoints of finished runs (only a resume needs them)"
    )

    @field_validator("overrides")
    @classmethod
    def _no_grid_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        grid_keys = {"strategy", "alpha", "seed", "model", "merge_weight"} & set(v)
        if grid_keys:
            raise ValueError(
                f"{', '.join(sorted(grid_keys))} are set by the grid (grid.strategies / alphas / seeds / "
                "merge_weights, base_models), not by train.overrides"
            )
        return v


class GridSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategies: list[Strategy] = Field(min_length=1)
    alphas: list[float] = Field(default_factory=lambda: [0.5], min_length=1, description="α values (Hybrid only)")
    merge_weights: list[float | Literal["auto"]] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="λ in (0, 1]: merge with the base; 1 = unmerged; 'auto' = chosen per training run by the λ rule "
        "on its held-out groups (polyret.validation) among auto_merge_weights",
    )
    auto_merge_weights: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0], min_length=1, description="the λ candidates of 'auto'"
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("alphas")
    @classmethod
    def _alpha_range(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= a <= 1.0 for a in v):
            raise ValueError("every α must be in [0, 1]")
        return list(dict.fromkeys(v))

    @field_validator("merge_weights", "auto_merge_weights")
    @classmethod
    def _lambda_range(cls, v: list) -> list:
        if any(w != "auto" and not 0.0 < w <= 1.0 for w in v):
            raise ValueError("every λ must be in (0, 1] (λ = 0 is the base model, which is always evaluated)")
        return list(dict.fromkeys(v))

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        return list(dict.fromkeys(v))


class TestsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest class

    against_base: bool = Field(True, description="test every variant against its untrained base model")
    pairs: Literal["all", "none"] | list[tuple[str, str]] = Field(
        "all", description="'all' pairs of trained variants, 'none', or a list of [a, b] variant labels"
    )
    n_permutations: int = Field(10_000, ge=100, description="sign flips of the randomization test")
    n_bootstrap: int = Field(2000, ge=100, description="bootstrap resamples for the delta's CI")
    level: float = Field(0.05, gt=0.0, lt=1.0, description="significance level for the report's marks (Holm-adjusted)")
    seed: int = 0


class ExperimentConfig(BaseModel):
    """The YAML file of `polyret experiment`. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    name: str = "experiment"
    description: str | None = None
    base_models: list[str] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        description="'default', 'tiny' (random test model), or a model dir; each is its own reference row",
    )
    train: TrainSection = Field(default_factory=TrainSection)
    grid: GridSection
    suites: list[SuiteConfig] = Field(min_length=1)
    tests: TestsSection = Field(default_factory=TestsSection)

    @model_validator(mode="after")
    def _unique_suite_labels(self) -> "ExperimentConfig":
        labels = [suite_label(s) for s in self.suites]
        dup = sorted({l for l in labels if labels.count(l) > 1})
        if dup:
            raise ValueError(f"two suites have the label {dup[0]!r}: give them distinct `label`s")
        return self


def suite_label(s: SuiteConfig) -> str:
    if s.label:
        return s.label
    if s.data and s.name in ("lareqa", "beir"):
        return f"{s.name}:{Path(s.data).name}"
    return s.name


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    if first["type"] == "missing":
        return f"{source}: missing key '{key}'"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{source}: key '{key}': {msg}"


def load_experiment_config(path: str | Path) -> tuple[ExperimentConfig, Path]:
    """Read and validate an experiment YAML; returns the config and the file's directory."""
    path = Path(path)
    raw = read_yaml_mapping(path, "experiment config", "(name, base_models, train, grid, suites, tests)")
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise PolyretError(_format_error(e, str(path))) from None
    return cfg, path.resolve().parent
