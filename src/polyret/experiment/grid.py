"""The grid of an experiment: variants (what seeds are averaged over) and runs (one model each),
keyed by hashes of their full configs so a changed config only adds runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyret.config import load_train_config as default_load_train_config
from polyret.errors import PolyretError
from polyret.experiment.config import ExperimentConfig


@dataclass(frozen=True)
class Variant:
    """What seeds are averaged over: one base model, strategy, α (Hybrid) and λ; or the base itself."""

    base_model: str
    strategy: str  # "base" for the untrained reference
    alpha: float | None = None
    merge_weight: float | str | None = None  # None for the base; 1.0 = unmerged; "auto" = the λ rule

    @property
    def is_base(self) -> bool:
        return self.strategy == "base"

    def label(self, with_base: bool = False) -> str:
        if self.is_base:
            core = "base"
        else:
            core = self.strategy + (f" α={self.alpha:g}" if self.alpha is not None else "")
            if self.merge_weight is not None and self.merge_weight != 1.0:
                lam = self.merge_weight
                core += f" λ={lam:g}" if isinstance(lam, float) else f" λ={lam}"
        return f"{self.base_model}: {core}" if with_base else core


@dataclass
class RunSpec:
    """One model to evaluate: a (variant, seed) point of the grid, or a base model."""

    key: str
    variant: Variant
    seed: int | None
    train_key: str | None
    train_config: dict[str, Any] | None  # resolved TrainConfig (model = the base model's spec)
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "variant": self.label,
            "base_model": self.variant.base_model,
            "strategy": self.variant.strategy,
            "alpha": self.variant.alpha,
            "merge_weight": self.variant.merge_weight,
            "seed": self.seed,
            "train_key": self.train_key,
        }


# Training options added after run keys were first written, with the default that keeps old keys.
KEY_NEUTRAL_DEFAULTS = {
    "answerless": "error",
    "teacher_cross": 0.0,
    "negatives_language": "passage",
    "validation_seed": None,
    "validation_sources": None,
}


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def norm_label(s: str) -> str:
    return " ".join(s.replace("alpha", "α").replace("lambda", "λ").split()).lower()


def run_train_config(tcfg) -> dict[str, Any]:
    """A resolved TrainConfig as a run records and hashes it (its train key)."""
    tdict = tcfg.model_dump(mode="json")
    if tdict.get("validation_seed") == tdict["seed"]:
        tdict["validation_seed"] = None  # the same split: the same run
    # Options added later leave a run's key unchanged while at their default, so an upgrade does not
    # orphan (and retrain) every run an experiment dir holds.
    for key, default in KEY_NEUTRAL_DEFAULTS.items():
        if tdict.get(key) == default:
            del tdict[key]
    # The grid merges (one training serves every λ): the training itself must not, whatever the train
    # YAML says (`polyret train` returns the merged dir when merge_weight is set, which would silently
    # turn λ = 1 into a merge).
    tdict["merge_weight"] = None
    return tdict


def expand_grid(
    cfg: ExperimentConfig,
    config_dir: Path,
    *,
    load_train_config: Callable[..., Any] | None = None,
) -> tuple[list[Variant], list[RunSpec]]:
    """All variants (base rows first) and all runs. Run keys hash the full run config."""
    load_train_config = load_train_config or default_load_train_config
    train_path = None
    if cfg.train.config:
        train_path = Path(cfg.train.config)
        if not train_path.is_absolute():
            train_path = config_dir / train_path
        if not train_path.is_file():
            raise PolyretError(f"train.config {cfg.train.config!r}: file {train_path} not found")
    with_base = len(cfg.base_models) > 1
    variants: list[Variant] = []
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for base in cfg.base_models:
        bvar = Variant(base, "base")
        variants.append(bvar)
        bkey = config_hash({"base_model": base, "train": None, "merge_weight": None})
        runs.append(RunSpec(bkey, bvar, None, None, None, bvar.label(with_base)))
    for base in cfg.base_models:
        for strategy in cfg.grid.strategies:
            alphas = cfg.grid.alphas if strategy == "hybrid" else [None]
            for alpha in alphas:
                for lam in cfg.grid.merge_weights:
                    var = Variant(base, strategy, alpha, lam)
                    variants.append(var)
                    for seed in cfg.grid.seeds:
                        overrides = dict(cfg.train.overrides)
                        overrides.update(strategy=strategy, seed=seed, model=base)
                        if alpha is not None:
                            overrides["alpha"] = alpha
                        try:
                            tcfg = load_train_config(train_path, overrides)
                        except PolyretError as e:
                            raise PolyretError(f"experiment train settings ({var.label()}, seed {seed}): {e}") from None
                        tdict = run_train_config(tcfg)
                        tkey = config_hash(tdict)
                        rkey = config_hash({"base_model": base, "train": tdict, "merge_weight": lam})
                        if rkey in seen:
                            continue
                        seen.add(rkey)
                        runs.append(RunSpec(rkey, var, seed, tkey, tdict, var.label(with_base)))
    return variants, runs
