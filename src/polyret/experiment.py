"""Experiments: a grid of training runs × evaluation suites, with CIs over seeds and paired tests.

`run_experiment(config, out_dir)` (and `polyret experiment CONFIG.yaml --out DIR`) expands the grid
in the config — base models × strategies × α (Hybrid only) × merge weight λ × seeds — trains each
run, evaluates every suite on it and on the untrained base model (the reference row), then writes
`summary.json` (runs, mean + 95% CI over seeds, paired tests between variants) and `report.md`.

Layout of the output directory (everything keyed by content hashes, so re-running is cheap):

    DIR/experiment.json                 marker + the resolved config of the last invocation
    DIR/base-models/<name>/             built base models (the `tiny` test model)
    DIR/train/<train_key>/              one training run (train key = hash of the resolved
                                        TrainConfig); `polyret_experiment_train.json` marks it done
    DIR/runs/<run_key>/run.json         one evaluated model: base, trained, or trained+merged
                                        (run key = hash of {base model, train config, λ})
    DIR/runs/<run_key>/merged/          the merged model when λ < 1
    DIR/runs/<run_key>/eval/<suite>/    the suite's own outputs + `per_query.npz` +
                                        `polyret_suite.json` (written last: marks the suite done)
    DIR/summary.json, DIR/report.md, DIR/plots/*.png

Reuse and resume: a training run whose done-marker exists is reused; one whose directory exists
without it was interrupted and is resumed (`train(..., resume=True)`); a suite whose marker exists
is not evaluated again. λ variants of one training share it. A changed config only adds runs.

Training, merging, model loading and suites are injectable (`Runner(..., train_fn=..., suites=...)`)
so the grid logic is testable with fakes; suites are looked up in `SUITES` (name -> callable).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from polyret.config import read_yaml_mapping
from polyret.errors import PolyretError
from rich.markup import escape

EXPERIMENT_MARKER = "experiment.json"
TRAIN_DONE = "polyret_experiment_train.json"
SUITE_DONE = "polyret_suite.json"
PER_QUERY_FILE = "per_query.npz"
SUMMARY_FILE = "summary.json"
SCHEMA_VERSION = 1

# Metrics for which a smaller number is better (used for significance marks and "best" in reports).
LOWER_IS_BETTER = {"rank_distance"}


def lower_is_better(metric: str) -> bool:
    return metric.split("[", 1)[0] in LOWER_IS_BETTER


# --------------------------------------------------------------------------------------- config
class SuiteConfig(BaseModel):
    """One evaluation suite. `name` picks the evaluator from the registry; the rest are its inputs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="evaluator: lareqa | xnli | tatoeba | beir (or a registered plugin)")
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
    keep_checkpoints: bool = Field(False, description="keep trainer checkpoints of finished runs (only a resume needs them)")

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

    strategies: list[Literal["x-x-mono", "x-x", "x-y", "hybrid"]] = Field(min_length=1)
    alphas: list[float] = Field(default_factory=lambda: [0.5], min_length=1, description="α values (Hybrid only)")
    merge_weights: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, description="λ in (0, 1]: merge with the base; 1 = unmerged"
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("alphas")
    @classmethod
    def _alpha_range(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= a <= 1.0 for a in v):
            raise ValueError("every α must be in [0, 1]")
        return list(dict.fromkeys(v))

    @field_validator("merge_weights")
    @classmethod
    def _lambda_range(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < w <= 1.0 for w in v):
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
        default_factory=lambda: ["default"], min_length=1,
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


# ----------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Variant:
    """What seeds are averaged over: one base model, strategy, α (Hybrid) and λ; or the base itself."""

    base_model: str
    strategy: str  # "base" for the untrained reference
    alpha: float | None = None
    merge_weight: float | None = None  # None for the base; 1.0 = unmerged

    @property
    def is_base(self) -> bool:
        return self.strategy == "base"

    def label(self, with_base: bool = False) -> str:
        if self.is_base:
            core = "base"
        else:
            core = self.strategy + (f" α={self.alpha:g}" if self.alpha is not None else "")
            if self.merge_weight is not None and self.merge_weight != 1.0:
                core += f" λ={self.merge_weight:g}"
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


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def _norm_label(s: str) -> str:
    return " ".join(s.replace("alpha", "α").replace("lambda", "λ").split()).lower()


def expand_grid(
    cfg: ExperimentConfig,
    config_dir: Path,
    *,
    load_train_config: Callable[..., Any] | None = None,
) -> tuple[list[Variant], list[RunSpec]]:
    """All variants (base rows first) and all runs. Run keys hash the full run config."""
    if load_train_config is None:
        from polyret.config import load_train_config
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
                        tdict = tcfg.model_dump(mode="json")
                        # The grid merges (one training serves every λ): the training itself must
                        # not, whatever the train YAML says (`polyret train` returns the merged dir
                        # when merge_weight is set, which would silently turn λ = 1 into a merge).
                        tdict["merge_weight"] = None
                        tkey = config_hash(tdict)
                        rkey = config_hash({"base_model": base, "train": tdict, "merge_weight": lam})
                        if rkey in seen:
                            continue
                        seen.add(rkey)
                        runs.append(RunSpec(rkey, var, seed, tkey, tdict, var.label(with_base)))
    return variants, runs


# ------------------------------------------------------------------------------------- suites
@dataclass
class PerQuery:
    """Per-query values of one metric: what paired tests need. `groups[i]` are the macro-average
    levels of entry i (e.g. (source language,) or (source, target)); `clusters[i]` names the query
    it belongs to (entries of one query are tested together)."""

    ids: np.ndarray  # (n,) str, unique
    values: np.ndarray  # (n,) float
    groups: np.ndarray  # (n, k) str
    clusters: np.ndarray | None = None  # (n,) str


@dataclass
class SuiteOutput:
    metrics: dict[str, float]  # flat: "multi.map", "mono.map[de]", ...
    per_query: dict[str, PerQuery] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)  # the metrics for the main table, in order
    per_language: dict[str, list[str]] = field(default_factory=dict)  # table name -> metric prefix


@dataclass
class SuiteContext:
    config_dir: Path
    show_progress: bool = True


SuiteFn = Callable[[Any, SuiteConfig, Path, SuiteContext], SuiteOutput]


def resolve_data_dir(spec: str | None, default: str, ctx: SuiteContext, suite: str) -> Path:
    """Absolute path; else relative to the experiment file's dir if it exists there; else the data dir."""
    from polyret.paths import data_path

    rel = spec or default
    p = Path(rel).expanduser()
    if p.is_absolute():
        if not p.exists():
            raise PolyretError(f"suite {suite}: data dir {p} does not exist")
        return p
    if (ctx.config_dir / p).exists():
        return ctx.config_dir / p
    try:
        return data_path(*p.parts)
    except PolyretError as e:
        raise PolyretError(f"suite {suite}: {e}") from None


def _lareqa_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> SuiteOutput:
    from polyret.data.lareqa import load_lareqa
    from polyret.encode import encode_texts
    from polyret.evaluate.lareqa import evaluate_lareqa, score_lareqa

    data = resolve_data_dir(suite.data, "lareqa/xquad-r", ctx, suite_label(suite))
    dataset = load_lareqa(data, langs=suite.langs)
    opts = dict(suite.options)
    max_paragraphs = opts.pop("max_paragraphs", None)
    if max_paragraphs is not None:
        dataset = subset_lareqa(dataset, int(max_paragraphs))
    every_nth = opts.pop("every_nth_paragraph", None)
    if every_nth is not None:
        # The demo's subset: every n-th paragraph in all languages, still 11-way parallel.
        from polyret.outcome import subset_paragraphs

        dataset = subset_paragraphs(dataset, int(every_nth))
    opts.setdefault("show_progress", ctx.show_progress)
    results = evaluate_lareqa(model, dataset, out_dir=out_dir, overwrite=True, **opts)
    out = lareqa_output(results)
    if not out.per_query:
        # The evaluator returns aggregates only; the per-query values paired tests need come from
        # its own ranking function on the embeddings it just cached (no second encoding), and are
        # checked against its aggregates below.
        candidate = opts.get("candidate", "sentence")
        cache = opts.get("cache", True)
        q = encode_texts(model, dataset.question_texts(), kind="query", show_progress=False, cache=cache)
        c = encode_texts(model, dataset.candidate_texts(candidate), kind="passage", show_progress=False, cache=cache)
        _, ranks = score_lareqa(q, c, dataset, return_ranks=True)
        out.per_query = lareqa_per_query_from_ranks(ranks, dataset)
        check_per_query(out, suite_label(suite))
    return out


def subset_lareqa(dataset, max_paragraphs: int):
    """The first `max_paragraphs` paragraphs of each language (file order) and the questions with a
    relevant sentence among them (relevant sets cut to what is kept). For smoke runs: the task is
    smaller and easier than the full pool, so its numbers are not comparable with full runs."""
    from polyret.data.lareqa import LareqaDataset

    kept_pids: dict[str, list[str]] = {}
    keep_c = []
    for i, c in enumerate(dataset.candidates):
        pids = kept_pids.setdefault(c.lang, [])
        if c.paragraph_id not in pids and len(pids) < max_paragraphs:
            pids.append(c.paragraph_id)
        if c.paragraph_id in pids:
            keep_c.append(i)
    new_index = np.full(dataset.n_candidates, -1, dtype=np.int64)
    new_index[keep_c] = np.arange(len(keep_c))
    questions, relevant = [], []
    for q, rel in zip(dataset.questions, dataset.relevant):
        r = new_index[rel]
        r = r[r >= 0]
        if r.size:
            questions.append(q)
            relevant.append(r)
    if not questions:
        raise PolyretError(f"LAReQA {dataset.name}: no question has an answer in the first {max_paragraphs} paragraphs")
    return LareqaDataset(f"{dataset.name}[:{max_paragraphs} paragraphs]", questions,
                         [dataset.candidates[i] for i in keep_c], relevant, dataset.languages, dict(dataset.load_warnings))


def lareqa_per_query_from_ranks(ranks, dataset) -> dict[str, PerQuery]:
    """Per-query Mono / Cross / Multi values, rank distance and own-language share from the LAReQA
    evaluator's ranks, with its metric functions. Groups reproduce its averaging: per source
    language (Cross: per target first), so a macro-weighted mean equals its headline number."""
    from polyret import metrics
    from polyret.evaluate.lareqa import MULTI_RECALL_K, OWN_LANGUAGE_TOP_K

    langs = list(dataset.languages)
    keys = np.asarray([q.key for q in dataset.questions])
    # The unit of the tests is the question id: its translations (one per language) are not
    # independent evidence, so they are flipped / resampled together.
    qids = np.asarray([q.qid for q in dataset.questions])
    q_lang = dataset.question_lang_ids()
    c_lang = dataset.candidate_lang_ids()
    src = np.asarray(langs)[q_lang]
    out: dict[str, PerQuery] = {}

    def put(name: str, values: np.ndarray, ids, groups, clusters=None):
        ok = np.isfinite(values)
        out[name] = PerQuery(np.asarray(ids)[ok], values[ok], np.asarray(groups, dtype=str)[ok],
                             None if clusters is None else np.asarray(clusters)[ok])

    # Ranks of each question's relevant items among the candidates of each language Y.
    n_lang = len(langs)
    in_y = ranks.rel_lang[:, None, :] == np.arange(n_lang)[None, :, None]
    ranks_qy = np.where(in_y, ranks.rank_lang[:, None, :], np.inf)
    ap_qy = metrics.average_precision(ranks_qy)
    r1_qy = metrics.recall_at_k(ranks_qy, 1)
    own = np.arange(len(keys)), q_lang
    put("mono.map", ap_qy[own], keys, src[:, None], qids)
    put("mono.recall@1", r1_qy[own], keys, src[:, None], qids)
    qi, yi = np.nonzero(np.arange(n_lang)[None, :] != q_lang[:, None])
    pair_ids = [f"{keys[i]}>{langs[y]}" for i, y in zip(qi.tolist(), yi.tolist())]
    pair_groups = np.stack([src[qi], np.asarray(langs)[yi]], axis=1)
    put("cross.map", ap_qy[qi, yi], pair_ids, pair_groups, qids[qi])
    put("cross.recall@1", r1_qy[qi, yi], pair_ids, pair_groups, qids[qi])
    put("multi.map", metrics.average_precision(ranks.rank_pool), keys, src[:, None], qids)
    put(f"multi.recall@{MULTI_RECALL_K}", metrics.recall_at_k(ranks.rank_pool, MULTI_RECALL_K), keys, src[:, None], qids)
    put("rank_distance", metrics.rank_distance(ranks.rank_pool), keys, src[:, None], qids)
    top = ranks.top_idx[:, :OWN_LANGUAGE_TOP_K]
    top_langs = np.where(top >= 0, c_lang[np.maximum(top, 0)], -1)
    put(f"top{OWN_LANGUAGE_TOP_K}_own_language_share", metrics.own_language_share(top_langs, q_lang), keys, src[:, None], qids)
    return out


def check_per_query(out: SuiteOutput, suite: str, tol: float = 1e-6) -> None:
    """A per-query array must reproduce its headline number under the macro weights; a mismatch
    would make every test on it meaningless, so it stops the run."""
    from polyret.stats import macro_weights

    for metric, pq in out.per_query.items():
        if metric not in out.metrics or len(pq.values) == 0:
            continue
        got = float(macro_weights([tuple(g) for g in pq.groups.tolist()]) @ pq.values)
        want = out.metrics[metric]
        if abs(got - want) > tol * max(1.0, abs(want)):
            raise RuntimeError(f"{suite} {metric}: per-query values average to {got}, the evaluator reports {want}")


def lareqa_output(results: dict[str, Any]) -> SuiteOutput:
    """Flatten a LAReQA results dict; per-query arrays from its `per_query` block when present."""
    metrics: dict[str, float] = {}
    headline = []
    per_language: dict[str, list[str]] = {}
    for setting, ks in (("mono", ("map", "recall@1")), ("cross", ("map", "recall@1")), ("multi", ("map", "recall@10"))):
        block = results.get(setting) or {}
        for k in ks:
            if k in block:
                metrics[f"{setting}.{k}"] = float(block[k])
                headline.append(f"{setting}.{k}")
        for lang, vals in (block.get("per_language") or {}).items():
            for k in ks:
                if k in vals:
                    metrics[f"{setting}.{k}[{lang}]"] = float(vals[k])
        if block.get("per_language"):
            per_language[f"{setting.capitalize()} mAP"] = [f"{setting}.map"]
    for extra in ("rank_distance", "top10_own_language_share"):
        block = results.get(extra) or {}
        if "mean" in block:
            metrics[extra] = float(block["mean"])
            headline.append(extra)
        for lang, v in (block.get("per_language") or {}).items():
            metrics[f"{extra}[{lang}]"] = float(v)
        if block.get("per_language"):
            per_language["Rank distance" if extra == "rank_distance" else "Top-10 own-language share"] = [extra]
    return SuiteOutput(metrics, lareqa_per_query(results), headline, per_language)


def lareqa_per_query(results: dict[str, Any]) -> dict[str, PerQuery]:
    """Per-query arrays from a LAReQA results dict's `per_query` block, if the evaluator gives one.

    Expected shape (lists aligned per metric): `{"<metric>": {"ids": [...], "values": [...],
    "groups": [[src], ...] or [[src, tgt], ...], "clusters": [...] (optional)}}`.
    """
    out: dict[str, PerQuery] = {}
    for metric, block in (results.get("per_query") or {}).items():
        if not isinstance(block, dict) or "values" not in block:
            continue
        ids = np.asarray(block["ids"], dtype=str)
        groups = np.asarray(block.get("groups") or [[""]] * len(ids), dtype=str)
        if groups.ndim == 1:
            groups = groups[:, None]
        clusters = np.asarray(block["clusters"], dtype=str) if block.get("clusters") is not None else None
        out[metric] = PerQuery(ids, np.asarray(block["values"], dtype=float), groups, clusters)
    return out


def _xnli_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> SuiteOutput:
    from polyret.evaluate.xnli import evaluate_xnli

    data = resolve_data_dir(suite.data, "xnli", ctx, suite_label(suite))
    opts = dict(suite.options)
    opts.setdefault("show_progress", ctx.show_progress)
    results = evaluate_xnli(
        model, data, split=suite.split or "dev", langs=suite.langs, out_dir=out_dir, overwrite=True, **opts
    )
    out = xnli_output(results)
    check_per_query(out, suite_label(suite))
    return out


def xnli_output(results: dict[str, Any]) -> SuiteOutput:
    metrics: dict[str, float] = {}
    for lang, s in (results.get("languages") or {}).items():
        metrics[f"accuracy[{lang}]"] = float(s["accuracy"])
        metrics[f"macro_f1[{lang}]"] = float(s["macro_f1"])
    mean = results.get("mean") or {}
    headline = []
    for k in ("accuracy", "macro_f1"):
        if k in mean:
            metrics[k] = float(mean[k])
            headline.append(k)
    non_en = results.get("mean_non_english") or {}
    for k in ("accuracy",):
        if isinstance(non_en.get(k), (int, float)):
            metrics[f"non_english.{k}"] = float(non_en[k])
            headline.append(f"non_english.{k}")
    low = results.get("low_resource") or {}
    for k in ("accuracy", "macro_f1"):
        if isinstance(low.get(k), (int, float)):
            metrics[f"low_resource.{k}"] = float(low[k])
            headline.append(f"low_resource.{k}")
    per_query: dict[str, PerQuery] = {}
    # Per-row correctness for paired tests, if the evaluator reports predictions per language.
    # XNLI rows are aligned across languages (translations of one premise/hypothesis pair): the
    # row index is the cluster, so a pair's translations are tested together.
    ids, vals, groups, clusters = [], [], [], []
    for lang, s in (results.get("languages") or {}).items():
        correct = s.get("correct")
        if correct is None:
            ids = []
            break
        ids += [f"{lang}|{i}" for i in range(len(correct))]
        vals += [float(c) for c in correct]
        groups += [[lang]] * len(correct)
        clusters += [str(i) for i in range(len(correct))]
    if ids:
        per_query["accuracy"] = PerQuery(np.asarray(ids), np.asarray(vals), np.asarray(groups, dtype=str), np.asarray(clusters))
    return SuiteOutput(metrics, per_query, headline, {"XNLI accuracy": ["accuracy"], "XNLI macro-F1": ["macro_f1"]})


def _tatoeba_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> SuiteOutput:
    from polyret.evaluate.tatoeba import evaluate_tatoeba

    data = resolve_data_dir(suite.data, "tatoeba", ctx, suite_label(suite))
    if not suite.langs:
        raise PolyretError(f"suite {suite_label(suite)}: list the Tatoeba languages under `langs` (e.g. [deu, swh, urd])")
    opts = dict(suite.options)
    opts.setdefault("show_progress", ctx.show_progress)
    results = evaluate_tatoeba(model, data, suite.langs, out_dir=out_dir, overwrite=True, **opts)
    out = tatoeba_output(results)
    out.per_query.update(_tatoeba_hits(model, data, results, kind=opts.get("kind", "query")))
    check_per_query(out, suite_label(suite))
    return out


def tatoeba_output(results: dict[str, Any]) -> SuiteOutput:
    metrics: dict[str, float] = {}
    for lang, s in (results.get("languages") or {}).items():
        for k in ("xx_to_en", "en_to_xx", "mean"):
            metrics[f"accuracy.{k}[{lang}]"] = float(s[k])
    headline = []
    for k in ("xx_to_en", "en_to_xx", "mean"):
        if k in (results.get("mean") or {}):
            metrics[f"accuracy.{k}"] = float(results["mean"][k])
            headline.append(f"accuracy.{k}")
    return SuiteOutput(metrics, {}, headline, {"Tatoeba accuracy@1 (mean of directions)": ["accuracy.mean"]})


def _tatoeba_hits(model, data: Path, results: dict[str, Any], *, kind) -> dict[str, PerQuery]:
    """Per-sentence hit@1 in both directions, for paired tests.

    The Tatoeba evaluator reports only accuracies; the embeddings come from the on-disk encoding
    cache it just filled (no second encoding), and the hits are checked against its accuracies so
    the two can never silently disagree.
    """
    from polyret.data.tatoeba import read_tatoeba
    from polyret.encode import encode_texts

    ids, vals, groups, clusters = [], [], [], []
    for lang, s in (results.get("languages") or {}).items():
        bt = read_tatoeba(data, lang)
        other = encode_texts(model, bt.other, kind=kind, show_progress=False, cache=True)
        eng = encode_texts(model, bt.english, kind=kind, show_progress=False, cache=True)
        for direction, q, t in (("xx_to_en", other, eng), ("en_to_xx", eng, other)):
            hits = (q @ t.T).argmax(axis=1) == np.arange(len(q))
            if abs(hits.mean() - s[direction]) > 1e-9:
                raise RuntimeError(f"Tatoeba {lang} {direction}: per-sentence hits {hits.mean()} != reported {s[direction]}")
            ids += [f"{lang}|{direction}|{i}" for i in range(len(q))]
            vals += hits.astype(float).tolist()
            groups += [[lang, direction]] * len(q)
            clusters += [f"{lang}|{i}" for i in range(len(q))]
    if not ids:
        return {}
    return {"accuracy.mean": PerQuery(np.asarray(ids), np.asarray(vals), np.asarray(groups, dtype=str), np.asarray(clusters))}


def _beir_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> SuiteOutput:
    from polyret.evaluate.beir import evaluate_beir

    if not suite.data:
        raise PolyretError(f"suite {suite_label(suite)}: give the BEIR data dir under `data`")
    data = resolve_data_dir(suite.data, suite.data, ctx, suite_label(suite))
    opts = dict(suite.options)
    opts.setdefault("show_progress", ctx.show_progress)
    if suite.split:
        opts["split"] = suite.split
    results = evaluate_beir(model, data, out_dir=out_dir, overwrite=True, **opts)
    out = beir_output(results, out_dir / "per_query.jsonl")
    check_per_query(out, suite_label(suite))
    return out


def beir_output(results: dict[str, Any], per_query_file: Path | None = None) -> SuiteOutput:
    """BEIR metrics (plain means over queries) and, from the evaluator's per_query.jsonl, the
    per-query values (one group: the headline is an unweighted mean)."""
    metrics = {k: float(v) for k, v in (results.get("metrics") or {}).items() if isinstance(v, (int, float))}
    for lang, block in (results.get("per_lang") or {}).items():
        for k, v in block.items():
            if k in metrics:
                metrics[f"{k}[{lang}]"] = float(v)
    per_query: dict[str, PerQuery] = {}
    if per_query_file is not None and per_query_file.is_file():
        rows = [json.loads(line) for line in per_query_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        for metric in metrics:
            if "[" in metric:
                continue
            vals = [(r["qid"], r[metric]) for r in rows if isinstance(r.get(metric), (int, float))]
            if vals:
                per_query[metric] = PerQuery(np.asarray([q for q, _ in vals]), np.asarray([v for _, v in vals], dtype=float),
                                             np.full((len(vals), 1), "all"))
    headline = [m for m in metrics if "[" not in m]
    per_language = {m: [m] for m in headline} if results.get("per_lang") else {}
    return SuiteOutput(metrics, per_query, headline, per_language)


SUITES: dict[str, SuiteFn] = {
    "lareqa": _lareqa_suite,
    "xnli": _xnli_suite,
    "tatoeba": _tatoeba_suite,
    "beir": _beir_suite,
}


# ------------------------------------------------------------------------------ storage helpers
def _write_json_atomic(path: Path, obj: Any) -> None:
    """Strict JSON (NaN/inf -> null: a metric that is undefined, e.g. Cross for one language),
    written to a temp file and renamed, so a crash never leaves a half-written marker."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(_finite(obj), indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def save_per_query(path: Path, per_query: dict[str, PerQuery]) -> None:
    arrays: dict[str, np.ndarray] = {"metrics": np.asarray(list(per_query), dtype=str)}
    for i, (_, pq) in enumerate(per_query.items()):
        arrays[f"m{i}_ids"] = np.asarray(pq.ids, dtype=str)
        arrays[f"m{i}_values"] = np.asarray(pq.values, dtype=float)
        arrays[f"m{i}_groups"] = np.asarray(pq.groups, dtype=str)
        if pq.clusters is not None:
            arrays[f"m{i}_clusters"] = np.asarray(pq.clusters, dtype=str)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_per_query(path: Path) -> dict[str, PerQuery]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        out = {}
        for i, metric in enumerate(z["metrics"].tolist()):
            clusters = z[f"m{i}_clusters"] if f"m{i}_clusters" in z.files else None
            out[metric] = PerQuery(z[f"m{i}_ids"], z[f"m{i}_values"], z[f"m{i}_groups"], clusters)
        return out


# ---------------------------------------------------------------------------------- the runner
Hook = Callable[[str, RunSpec, str | None], None]


class Runner:
    """Runs (or reuses) every run of an experiment and aggregates the results.

    Injectable pieces (defaults are the real ones): `train_fn(config, out_dir, *, resume,
    show_progress) -> model dir`, `merge_fn(base, tuned, weight, out) -> dir`, `load_model_fn(name)`,
    `build_base_fn(name, out_dir) -> path or name` (resolves 'tiny'), `suites` (name -> SuiteFn),
    `hook(event, run, suite)` called at "run_start", "train_done", "suite_done", "run_done" (tests
    raise from it to simulate an interruption).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: str | Path,
        *,
        config_dir: str | Path = ".",
        train_fn: Callable | None = None,
        merge_fn: Callable | None = None,
        load_model_fn: Callable | None = None,
        build_base_fn: Callable | None = None,
        load_train_config_fn: Callable | None = None,
        suites: dict[str, SuiteFn] | None = None,
        hook: Hook | None = None,
        show_progress: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.out_dir = Path(out_dir)
        self.config_dir = Path(config_dir)
        self.train_fn = train_fn
        self.merge_fn = merge_fn
        self.load_model_fn = load_model_fn
        self.build_base_fn = build_base_fn or _build_base
        self.suites = dict(SUITES if suites is None else suites)
        self.hook = hook
        self.show_progress = show_progress
        self.log = log or _default_log(show_progress)
        unknown = [s.name for s in config.suites if s.name not in self.suites]
        if unknown:
            raise PolyretError(
                f"unknown evaluation suite {unknown[0]!r} (known: {', '.join(sorted(self.suites))})"
            )
        self.variants, self.runs = expand_grid(config, self.config_dir, load_train_config=load_train_config_fn)
        self.counts = {"trained": 0, "resumed": 0, "train_reused": 0, "evaluated": 0, "eval_reused": 0, "merged": 0}
        self._base_paths: dict[str, str] = {}

    # -- directory ------------------------------------------------------------------------------
    def prepare_out_dir(self) -> None:
        """Create DIR, or accept it if it is one of ours; refuse to write into anything else."""
        d = self.out_dir
        if d.exists() and not d.is_dir():
            raise PolyretError(f"--out {d} is a file, not a directory")
        if d.is_dir() and any(d.iterdir()) and not (d / EXPERIMENT_MARKER).is_file():
            raise PolyretError(
                f"--out {d} exists and is not a polyret experiment directory (no {EXPERIMENT_MARKER}); "
                "choose a new or empty directory"
            )
        d.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(
            d / EXPERIMENT_MARKER,
            {"polyret_experiment": SCHEMA_VERSION, "config": self.config.model_dump(mode="json"),
             "config_dir": str(self.config_dir)},
        )

    def run_dir(self, run: RunSpec) -> Path:
        return self.out_dir / "runs" / run.key

    def suite_dir(self, run: RunSpec, suite: SuiteConfig) -> Path:
        skey = config_hash(suite.model_dump(mode="json"), 8)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in suite_label(suite))
        return self.run_dir(run) / "eval" / f"{safe}-{skey}"

    # -- models ---------------------------------------------------------------------------------
    def base_model_path(self, spec: str) -> str:
        if spec not in self._base_paths:
            self._base_paths[spec] = str(self.build_base_fn(spec, self.out_dir / "base-models"))
        return self._base_paths[spec]

    def _load(self, name: str):
        if self.load_model_fn is None:
            from polyret.model import load_model

            self.load_model_fn = load_model
        return self.load_model_fn(name)

    def _train(self, run: RunSpec) -> str:
        """Train (or reuse / resume) the run's training; returns the trained model dir."""
        tdir = self.out_dir / "train" / run.train_key
        done = tdir / TRAIN_DONE
        if done.is_file():
            self.counts["train_reused"] += 1
            return str(tdir / json.loads(done.read_text(encoding="utf-8"))["model_dir"])
        if self.train_fn is None:
            from polyret.train import train

            self.train_fn = train
        from polyret.config import TrainConfig

        tconf = dict(run.train_config)
        tconf["model"] = self.base_model_path(run.variant.base_model)
        # A training dir with its config.yaml (written by `train` before the first step) was
        # interrupted: resume it. One without (killed while loading data) holds nothing worth
        # keeping; it is ours (inside the experiment dir), so start it afresh.
        resume = (tdir / "config.yaml").is_file()
        if tdir.exists() and not resume:
            shutil.rmtree(tdir)
        self.log(f"{'resuming' if resume else 'training'} {run.label} seed {run.seed} -> {tdir}")
        model_dir = Path(self.train_fn(TrainConfig.model_validate(tconf), tdir, resume=resume, show_progress=self.show_progress))
        self.counts["resumed" if resume else "trained"] += 1
        rel = os.path.relpath(model_dir, tdir)
        _write_json_atomic(done, {"model_dir": rel, "config": run.train_config, "finished": time.time()})
        if not self.config.train.keep_checkpoints:
            # Checkpoints only serve a resume; a finished run does not need them (they are most
            # of the disk an experiment takes).
            for ckpt in ("checkpoints",):
                if (tdir / ckpt).is_dir():
                    shutil.rmtree(tdir / ckpt)
        return str(tdir / rel)

    def _model_for(self, run: RunSpec) -> str:
        """Path/name of the model a run evaluates (training and merging on demand)."""
        base = self.base_model_path(run.variant.base_model)
        if run.variant.is_base:
            return base
        tuned = self._train(run)
        self._fire("train_done", run)
        lam = run.variant.merge_weight
        if lam is None or lam == 1.0:
            return tuned
        mdir = self.run_dir(run) / "merged"
        marker = self.run_dir(run) / "merged.done"
        if not marker.is_file():
            if self.merge_fn is None:
                from polyret.merge import merge_models

                self.merge_fn = merge_models
            if mdir.exists():  # an interrupted merge: our own dir, rebuild it
                shutil.rmtree(mdir)
            self.merge_fn(base, tuned, lam, mdir)
            marker.write_text("done\n", encoding="utf-8")
            self.counts["merged"] += 1
        return str(mdir)

    def _fire(self, event: str, run: RunSpec, suite: str | None = None) -> None:
        if self.hook is not None:
            self.hook(event, run, suite)

    # -- running --------------------------------------------------------------------------------
    def run_one(self, run: RunSpec) -> dict[str, Any]:
        rdir = self.run_dir(run)
        rdir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(rdir / "run.json", run.to_json() | {"train_config": run.train_config})
        self._fire("run_start", run)
        pending = [s for s in self.config.suites if not (self.suite_dir(run, s) / SUITE_DONE).is_file()]
        self.counts["eval_reused"] += len(self.config.suites) - len(pending)
        if pending:
            model_name = self._model_for(run)
            model = self._load(model_name)
            ctx = SuiteContext(self.config_dir, self.show_progress)
            for suite in pending:
                sdir = self.suite_dir(run, suite)
                sdir.mkdir(parents=True, exist_ok=True)
                label = suite_label(suite)
                self.log(f"evaluating {run.label}" + (f" seed {run.seed}" if run.seed is not None else "") + f" on {label}")
                t0 = time.perf_counter()
                out = self.suites[suite.name](model, suite, sdir, ctx)
                save_per_query(sdir / PER_QUERY_FILE, out.per_query)
                _write_json_atomic(
                    sdir / SUITE_DONE,
                    {"suite": label, "config": suite.model_dump(mode="json"), "metrics": out.metrics,
                     "headline": out.headline, "per_language": out.per_language,
                     "seconds": time.perf_counter() - t0},
                )
                self.counts["evaluated"] += 1
                self._fire("suite_done", run, label)
            del model
        self._fire("run_done", run)
        return self.collect(run)

    def collect(self, run: RunSpec) -> dict[str, Any]:
        """The run's record for summary.json (only finished suites)."""
        rec = run.to_json() | {"dir": os.path.relpath(self.run_dir(run), self.out_dir), "results": {}}
        for suite in self.config.suites:
            marker = self.suite_dir(run, suite) / SUITE_DONE
            if marker.is_file():
                rec["results"][suite_label(suite)] = json.loads(marker.read_text(encoding="utf-8"))["metrics"]
        rec["complete"] = len(rec["results"]) == len(self.config.suites)
        return rec

    def run(self) -> dict[str, Any]:
        """Run everything not yet done, then aggregate and write summary.json and report.md."""
        self.prepare_out_dir()
        t0 = time.perf_counter()
        progress = _progress(self.show_progress)
        with progress:
            task = progress.add_task("experiment", total=len(self.runs))
            for run in self.runs:
                progress.update(task, description=f"{run.label}" + (f" seed {run.seed}" if run.seed is not None else ""))
                self.run_one(run)
                progress.advance(task)
        wall = time.perf_counter() - t0
        return self.finish(wall_s=wall)

    def finish(self, *, wall_s: float | None = None) -> dict[str, Any]:
        """Aggregate whatever is finished; write summary.json, report.md and plots."""
        summary = self.aggregate()
        summary["timing"] = {"wall_s": wall_s}
        summary["counts"] = dict(self.counts)
        summary = _finite(summary)
        _write_json_atomic(self.out_dir / SUMMARY_FILE, summary)
        from polyret.experiment_report import write_report

        write_report(summary, self.out_dir)
        return summary

    # -- aggregation ----------------------------------------------------------------------------
    def aggregate(self) -> dict[str, Any]:
        from polyret.stats import mean_ci

        with_base = len(self.config.base_models) > 1
        records = [self.collect(r) for r in self.runs]
        by_variant: dict[str, list[tuple[RunSpec, dict]]] = {}
        for run, rec in zip(self.runs, records):
            by_variant.setdefault(run.label, []).append((run, rec))
        aggregate: dict[str, dict[str, dict[str, dict]]] = {}
        for var in self.variants:
            label = var.label(with_base)
            aggregate[label] = {}
            for suite in self.config.suites:
                sl = suite_label(suite)
                values: dict[str, list[float]] = {}
                for _, rec in by_variant.get(label, []):
                    for m, v in rec["results"].get(sl, {}).items():
                        values.setdefault(m, []).append(v)
                aggregate[label][sl] = {m: mean_ci(vs).to_json() for m, vs in values.items()}
        suites_meta = {}
        for suite in self.config.suites:
            sl = suite_label(suite)
            meta = None
            for run in self.runs:
                marker = self.suite_dir(run, suite) / SUITE_DONE
                if marker.is_file():
                    m = json.loads(marker.read_text(encoding="utf-8"))
                    meta = {"name": suite.name, "headline": m["headline"], "per_language": m["per_language"]}
                    break
            suites_meta[sl] = meta or {"name": suite.name, "headline": [], "per_language": {}}
        variants_meta = [
            {"label": v.label(with_base), "base_model": v.base_model, "strategy": v.strategy, "alpha": v.alpha,
             "merge_weight": v.merge_weight, "seeds": [r.seed for r, _ in by_variant.get(v.label(with_base), [])]}
            for v in self.variants
        ]
        return {
            "schema": SCHEMA_VERSION,
            "name": self.config.name,
            "description": self.config.description,
            "config": self.config.model_dump(mode="json"),
            "variants": variants_meta,
            "suites": suites_meta,
            "runs": records,
            "aggregate": aggregate,
            "tests": self.paired_tests(),
        }

    def test_pairs(self) -> list[tuple[Variant, Variant]]:
        """(a, b) pairs to test, delta = a − b: variant vs its base, then pairs of trained variants."""
        cfg = self.config.tests
        with_base = len(self.config.base_models) > 1
        trained = [v for v in self.variants if not v.is_base]
        pairs: list[tuple[Variant, Variant]] = []
        if cfg.against_base:
            pairs += [(v, Variant(v.base_model, "base")) for v in trained]
        if cfg.pairs == "all":
            for i, b in enumerate(trained):
                for a in trained[i + 1 :]:
                    if a.base_model == b.base_model:
                        pairs.append((a, b))
        elif isinstance(cfg.pairs, list):
            by_label = {_norm_label(v.label(with_base)): v for v in self.variants}
            for a_label, b_label in cfg.pairs:
                try:
                    pairs.append((by_label[_norm_label(a_label)], by_label[_norm_label(b_label)]))
                except KeyError as e:
                    known = ", ".join(v.label(with_base) for v in self.variants)
                    raise PolyretError(f"tests.pairs: no variant {e.args[0]!r} in the grid (variants: {known})") from None
        return list(dict.fromkeys(pairs))

    def _seed_pooled(self, variant: Variant, suite: SuiteConfig) -> tuple[dict[str, PerQuery], int]:
        """Per-query values of a variant, averaged over its seeds (queries present in every seed)."""
        runs = [r for r in self.runs if r.variant == variant]
        loaded = [load_per_query(self.suite_dir(r, suite) / PER_QUERY_FILE) for r in runs
                  if (self.suite_dir(r, suite) / SUITE_DONE).is_file()]
        if not loaded:
            return {}, 0
        out: dict[str, PerQuery] = {}
        for metric in set.intersection(*(set(pq) for pq in loaded)):
            first = loaded[0][metric]
            common = set(first.ids.tolist())
            for pq in loaded[1:]:
                common &= set(pq[metric].ids.tolist())
            keep = np.array([i in common for i in first.ids.tolist()])
            ids = first.ids[keep]
            total = np.zeros(len(ids))
            for pq in loaded:
                pos = {q: k for k, q in enumerate(pq[metric].ids.tolist())}
                total += pq[metric].values[[pos[q] for q in ids.tolist()]]
            clusters = first.clusters[keep] if first.clusters is not None else None
            out[metric] = PerQuery(ids, total / len(loaded), first.groups[keep], clusters)
        return out, len(loaded)

    def paired_tests(self) -> list[dict[str, Any]]:
        """Paired randomization test (+ bootstrap CI of the delta, Cohen's d_z) per pair, suite and
        per-query metric; seeds pooled by averaging each query's value over a variant's seeds.
        p-values are Holm-adjusted within each (suite, metric) family."""
        from polyret.stats import cohens_dz, holm, macro_weights, paired_bootstrap, paired_randomization_test

        cfg = self.config.tests
        with_base = len(self.config.base_models) > 1
        tests: list[dict[str, Any]] = []
        cache: dict[tuple, tuple[dict[str, PerQuery], int]] = {}

        def pooled(v: Variant, s: SuiteConfig):
            k = (v, suite_label(s))
            if k not in cache:
                cache[k] = self._seed_pooled(v, s)
            return cache[k]

        for a, b in self.test_pairs():
            for suite in self.config.suites:
                pa, na = pooled(a, suite)
                pb, nb = pooled(b, suite)
                for metric in sorted(set(pa) & set(pb)):
                    qa, qb = pa[metric], pb[metric]
                    pos_b = {q: k for k, q in enumerate(qb.ids.tolist())}
                    idx_a = [k for k, q in enumerate(qa.ids.tolist()) if q in pos_b]
                    if len(idx_a) < 2:
                        continue
                    idx_b = [pos_b[q] for q in qa.ids[idx_a].tolist()]
                    va, vb = qa.values[idx_a], qb.values[idx_b]
                    groups = [tuple(g) for g in qa.groups[idx_a].tolist()]
                    w = macro_weights(groups)
                    clusters = qa.clusters[idx_a] if qa.clusters is not None else None
                    rt = paired_randomization_test(va, vb, weights=w, clusters=clusters,
                                                   n_permutations=cfg.n_permutations, seed=cfg.seed)
                    bs = paired_bootstrap(va, vb, weights=w, clusters=clusters, n_resamples=cfg.n_bootstrap, seed=cfg.seed)
                    tests.append({
                        "a": a.label(with_base), "b": b.label(with_base), "suite": suite_label(suite), "metric": metric,
                        "delta": rt.delta, "delta_ci95": list(bs.ci), "p_value": rt.p_value,
                        "p_bootstrap": bs.p_value, "effect_size_dz": cohens_dz(va, vb, clusters=clusters),
                        "n_queries": int(len(idx_a)), "n_units": rt.n_units, "n_seeds": [na, nb],
                        "method": f"paired sign-flip randomization, {cfg.n_permutations} permutations, macro-weighted",
                        "lower_is_better": lower_is_better(metric),
                    })
        # Holm within each (suite, metric) family: the pairs compared on one number.
        fams: dict[tuple[str, str], list[int]] = {}
        for i, t in enumerate(tests):
            fams.setdefault((t["suite"], t["metric"]), []).append(i)
        for idx in fams.values():
            for i, p in zip(idx, holm([tests[i]["p_value"] for i in idx])):
                tests[i]["p_holm"] = p
                tests[i]["significant"] = p < cfg.level
        return tests


def _build_base(spec: str, out_root: Path) -> str:
    """'tiny' -> a random tiny model built once inside the experiment dir; anything else as given."""
    if spec == "tiny":
        out = out_root / "tiny"
        st = out / "st"
        if not (st / "modules.json").is_file():
            from polyret.model import build_tiny_model

            build_tiny_model(out)
        return str(st)
    return spec


def _default_log(show: bool) -> Callable[[str], None]:
    if not show:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]{escape(str(msg))}[/]")


def _progress(show: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]runs[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), disable=not show, transient=False,
    )


def run_experiment(
    config: str | Path | ExperimentConfig,
    out_dir: str | Path,
    *,
    report_only: bool = False,
    **runner_kwargs: Any,
) -> dict[str, Any]:
    """Run (or resume) an experiment from a YAML path or a config object; returns the summary.

    `report_only`: aggregate what is finished and rewrite summary.json / report.md, run nothing.
    """
    if isinstance(config, ExperimentConfig):
        cfg, cdir = config, Path(runner_kwargs.pop("config_dir", "."))
    else:
        cfg, cdir = load_experiment_config(config)
        runner_kwargs.pop("config_dir", None)
    runner = Runner(cfg, out_dir, config_dir=cdir, **runner_kwargs)
    if report_only:
        if not (Path(out_dir) / EXPERIMENT_MARKER).is_file():
            raise PolyretError(f"{out_dir} is not an experiment directory (no {EXPERIMENT_MARKER}); nothing to report")
        return runner.finish()
    return runner.run()
