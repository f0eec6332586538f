"""Comparing variants: per-query values pooled over seeds, paired randomization tests, Holm.

Each query's value is averaged over a variant's seeds (queries present in every seed), then two
variants are compared on the queries both have: a two-sided sign-flip randomization test on the
metric's own macro average (the evaluator's `PerQuery.groups`), flipping whole clusters (e.g. the
translations of one question) together; the delta's CI from a paired bootstrap; Cohen's d_z; Holm
adjustment within each (suite, metric) family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polyret.errors import PolyretError
from polyret.evaluate.result import PerQuery, lower_is_better
from polyret.experiment.config import ExperimentConfig, SuiteConfig, suite_label
from polyret.experiment.grid import RunSpec, Variant, norm_label
from polyret.stats import cohens_dz, holm, macro_weights, paired_bootstrap, paired_randomization_test

# Per-query values of one finished (run, suite), or None when that suite has not finished for the run.
PerQueryLoader = Callable[[RunSpec, SuiteConfig], "dict[str, PerQuery] | None"]


def test_pairs(config: ExperimentConfig, variants: Sequence[Variant]) -> list[tuple[Variant, Variant]]:
    """(a, b) pairs to test, delta = a − b: variant vs its base, then pairs of trained variants."""
    cfg = config.tests
    with_base = len(config.base_models) > 1
    trained = [v for v in variants if not v.is_base]
    pairs: list[tuple[Variant, Variant]] = []
    if cfg.against_base:
        pairs += [(v, Variant(v.base_model, "base")) for v in trained]
    if cfg.pairs == "all":
        for i, b in enumerate(trained):
            for a in trained[i + 1 :]:
                if a.base_model == b.base_model:
                    pairs.append((a, b))
    elif isinstance(cfg.pairs, list):
        by_label = {norm_label(v.label(with_base)): v for v in variants}
        for a_label, b_label in cfg.pairs:
            try:
                pairs.append((by_label[norm_label(a_label)], by_label[norm_label(b_label)]))
            except KeyError as e:
                known = ", ".join(v.label(with_base) for v in variants)
                raise PolyretError(f"tests.pairs: no variant {e.args[0]!r} in the grid (variants: {known})") from None
    return list(dict.fromkeys(pairs))


test_pairs.__test__ = False  # not a pytest test


def seed_pooled(per_seed: Sequence[dict[str, PerQuery]]) -> dict[str, PerQuery]:
    """Per metric: each query's value averaged over the seeds (queries present in every seed)."""
    if not per_seed:
        return {}
    out: dict[str, PerQuery] = {}
    for metric in set.intersection(*(set(pq) for pq in per_seed)):
        first = per_seed[0][metric]
        common = set(first.ids.tolist())
        for pq in per_seed[1:]:
            common &= set(pq[metric].ids.tolist())
        keep = np.array([i in common for i in first.ids.tolist()], dtype=bool)
        ids = first.ids[keep]
        total = np.zeros(len(ids))
        for pq in per_seed:
            pos = {q: k for k, q in enumerate(pq[metric].ids.tolist())}
            total += pq[metric].values[[pos[q] for q in ids.tolist()]]
        clusters = first.clusters[keep] if first.clusters is not None else None
        out[metric] = PerQuery(ids, total / len(per_seed), first.groups[keep], clusters)
    return out


def paired_tests(
    config: ExperimentConfig, variants: Sequence[Variant], runs: Sequence[RunSpec], load: PerQueryLoader
) -> list[dict[str, Any]]:
    """Paired randomization test (+ bootstrap CI of the delta, Cohen's d_z) per pair, suite and
    per-query metric; seeds pooled. p-values are Holm-adjusted within each (suite, metric) family."""
    cfg = config.tests
    with_base = len(config.base_models) > 1
    tests: list[dict[str, Any]] = []
    cache: dict[tuple, tuple[dict[str, PerQuery], int]] = {}

    def pooled(v: Variant, s: SuiteConfig) -> tuple[dict[str, PerQuery], int]:
        k = (v, suite_label(s))
        if k not in cache:
            loaded = [pq for r in runs if r.variant == v and (pq := load(r, s)) is not None]
            cache[k] = (seed_pooled(loaded), len(loaded))
        return cache[k]

    for a, b in test_pairs(config, variants):
        for suite in config.suites:
            pa, na = pooled(a, suite)
            pb, nb = pooled(b, suite)
            for metric in sorted(set(pa) & set(pb)):
                t = paired_test(
                    pa[metric],
                    pb[metric],
                    metric,
                    n_permutations=cfg.n_permutations,
                    n_bootstrap=cfg.n_bootstrap,
                    seed=cfg.seed,
                )
                if t is not None:
                    tests.append(
                        {
                            "a": a.label(with_base),
                            "b": b.label(with_base),
                            "suite": suite_label(suite),
                            "metric": metric,
                        }
                        | t
                        | {"n_seeds": [na, nb]}
                    )
    return holm_within(tests, ("suite", "metric"), cfg.level)


def paired_test(
    qa: PerQuery, qb: PerQuery, metric: str, *, n_permutations: int, n_bootstrap: int, seed: int
) -> dict[str, Any] | None:
    """a − b on one metric's per-query values, over the queries both have (None when fewer than 2):
    sign-flip randomization p on the metric's macro average, paired-bootstrap CI, Cohen's d_z."""
    pos_b = {q: k for k, q in enumerate(qb.ids.tolist())}
    idx_a = [k for k, q in enumerate(qa.ids.tolist()) if q in pos_b]
    if len(idx_a) < 2:
        return None
    idx_b = [pos_b[q] for q in qa.ids[idx_a].tolist()]
    va, vb = qa.values[idx_a], qb.values[idx_b]
    w = macro_weights([tuple(g) for g in qa.groups[idx_a].tolist()])
    clusters = qa.clusters[idx_a] if qa.clusters is not None else None
    rt = paired_randomization_test(va, vb, weights=w, clusters=clusters, n_permutations=n_permutations, seed=seed)
    bs = paired_bootstrap(va, vb, weights=w, clusters=clusters, n_resamples=n_bootstrap, seed=seed)
    return {
        "delta": rt.delta,
        "delta_ci95": list(bs.ci),
        "p_value": rt.p_value,
        "p_bootstrap": bs.p_value,
        "effect_size_dz": cohens_dz(va, vb, clusters=clusters),
        "n_queries": int(len(idx_a)),
        "n_units": rt.n_units,
        "method": f"paired sign-flip randomization, {n_permutations} permutations, macro-weighted",
        "lower_is_better": lower_is_better(metric),
    }


def holm_within(tests: list[dict[str, Any]], family: Sequence[str], level: float) -> list[dict[str, Any]]:
    """Holm-adjust p-values within each family of tests (the tests sharing the values of the `family`
    keys, e.g. suite and metric: the pairs compared on one number); sets `p_holm` and `significant`."""
    fams: dict[tuple, list[int]] = {}
    for i, t in enumerate(tests):
        fams.setdefault(tuple(t[k] for k in family), []).append(i)
    for idx in fams.values():
        for i, p in zip(idx, holm([tests[i]["p_value"] for i in idx])):
            tests[i]["p_holm"] = p
            tests[i]["significant"] = p < level
    return tests
