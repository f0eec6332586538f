"""Statistics for experiments: confidence intervals over seeds and paired tests over queries.

Pure functions on numpy arrays; nothing here knows about models or files.

Conventions
-----------
* **Mean and 95% CI over seeds** (`mean_ci`): Student t-interval, mean ± t(0.975, n−1)·s/√n with
  the sample standard deviation s (ddof=1). Seeds are few (2–5), so the t quantile, not 1.96, is
  the honest multiplier. With one value there is no spread to estimate: the interval is `None`
  (never a zero-width interval that would claim certainty).
* **Paired tests over queries**: system A and system B scored on the *same* queries. A per-query
  difference d_i = a_i − b_i. The statistic is a weighted mean Σ w_i d_i, so the test can reproduce
  a macro average (`macro_weights`: every language counts equally however many queries it has,
  and nested: per target language first, then per source language, as LAReQA's Cross setting
  averages). `clusters` groups entries that belong to one query (e.g. one question scored against
  several target languages): they are flipped / resampled together, because they are not
  independent.
* **Randomization test** (`paired_randomization_test`): Fisher's sign-flip test — under H0 (A and
  B exchangeable per query) each query's difference is equally likely to have either sign.
  Two-sided, p = (1 + #{|T*| ≥ |T|}) / (1 + n_permutations) (Phipson & Smyth 2010: never 0).
  Same test as ranx's `fisher_randomization_test` (which permutes each query's two scores);
  ours adds weights and clusters and draws signs from random bits, so 10k permutations over
  100k queries take well under a second.
* **Paired bootstrap** (`paired_bootstrap`): resample query clusters with replacement; percentile
  CI of the weighted mean difference; p-value from the shifted (H0-centred) bootstrap
  distribution.
* **Effect size** (`cohens_dz`): Cohen's d for paired data, d_z = mean(d) / sd(d) over query
  clusters (unweighted). Report it next to the raw delta and its CI: with 10k queries tiny deltas
  are "significant", d_z says whether they matter.
* **Multiple comparisons** (`holm`): Holm–Bonferroni adjusted p-values for a family of tests.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MeanCI",
    "mean_ci",
    "macro_weights",
    "RandomizationResult",
    "paired_randomization_test",
    "BootstrapResult",
    "paired_bootstrap",
    "cohens_dz",
    "holm",
]


@dataclass(frozen=True)
class MeanCI:
    mean: float
    ci95: tuple[float, float] | None  # None when n < 2 (no spread to estimate)
    n: int
    std: float | None = None

    def to_json(self) -> dict:
        return {
            "mean": self.mean,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
            "n": self.n,
            "std": self.std,
        }


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval of a few values (e.g. one metric over seeds).

    NaN values are dropped (a seed that produced no number does not count). With n < 2 the
    interval is None.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return MeanCI(float("nan"), None, 0, None)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, None, 1, None)
    sd = float(x.std(ddof=1))
    from scipy import stats as sps  # scipy.stats takes seconds to import; only CIs need it

    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, (mean - half, mean + half), n, sd)


def macro_weights(groups: Sequence[Sequence[Hashable]] | None, n: int | None = None) -> np.ndarray:
    """Weights that turn Σ w_i x_i into a nested macro average.

    `groups[i]` is a tuple of level labels for entry i, outermost first, e.g. `(source_lang,)`
    or `(source_lang, target_lang)`. Every label of the outermost level gets equal total weight,
    each of its sub-labels an equal share of that, and so on; entries of the innermost cell share
    its weight equally. `groups=None` gives the plain mean (1/n each).
    """
    if groups is None:
        if n is None:
            raise ValueError("macro_weights needs groups or n")
        return np.full(n, 1.0 / n) if n else np.zeros(0)
    keys = [tuple(g) for g in groups]
    if not keys:
        return np.zeros(0)
    depth = len(keys[0])
    if any(len(k) != depth for k in keys):
        raise ValueError("all group tuples must have the same number of levels")
    if depth == 0:
        return np.full(len(keys), 1.0 / len(keys))
    # children[prefix] = set of distinct next-level labels under that prefix
    children: dict[tuple, set] = {}
    cell_count: dict[tuple, int] = {}
    for k in keys:
        for lvl in range(depth):
            children.setdefault(k[:lvl], set()).add(k[lvl])
        cell_count[k] = cell_count.get(k, 0) + 1
    w = np.empty(len(keys))
    for i, k in enumerate(keys):
        share = 1.0
        for lvl in range(depth):
            share /= len(children[k[:lvl]])
        w[i] = share / cell_count[k]
    return w


def _paired_inputs(a, b, weights, clusters):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D of equal length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("paired test needs at least one query")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("paired arrays contain NaN")
    d = a - b
    w = np.full(d.size, 1.0 / d.size) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != d.shape:
        raise ValueError("weights must have the same length as the paired arrays")
    contrib = w * d
    if clusters is None:
        return contrib, d, w
    # Sum the weighted differences of each cluster: the cluster is the exchangeable unit.
    _, inv = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(inv.max()) + 1
    c = np.bincount(inv, weights=contrib, minlength=k)
    cw = np.bincount(inv, weights=w, minlength=k)
    # Unweighted per-cluster mean difference (for the effect size).
    cd = np.bincount(inv, weights=d, minlength=k) / np.bincount(inv, minlength=k)
    return c, cd, cw


@dataclass(frozen=True)
class RandomizationResult:
    delta: float  # weighted mean of a − b
    p_value: float  # two-sided
    n_units: int  # exchangeable units (queries or query clusters)
    n_permutations: int


def _random_signs(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """±1 float matrix (rows, cols) from random bits (8 signs per random byte: fast)."""
    nbytes = (cols + 7) // 8
    bits = np.unpackbits(rng.integers(0, 256, size=(rows, nbytes), dtype=np.uint8), axis=1)[:, :cols]
    return bits.astype(np.float32) * 2.0 - 1.0


def paired_randomization_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    weights: Sequence[float] | None = None,
    clusters: Sequence[Hashable] | None = None,
    n_permutations: int = 10_000,
    seed: int = 0,
    chunk: int | None = None,
) -> RandomizationResult:
    """Two-sided paired sign-flip randomization test of Σ w_i (a_i − b_i) = 0.

    See the module docstring for the conventions; `chunk` bounds memory (signs per chunk).
    """
    c, _, _ = _paired_inputs(a, b, weights, clusters)
    observed = float(c.sum())
    rng = np.random.default_rng(seed)
    n = c.size
    c32 = c.astype(np.float32)
    # Float32 sums of many tiny contributions: compare with a tolerance so that a permutation that
    # reproduces the observed statistic exactly (e.g. all-equal differences) counts as "as extreme".
    tol = 1e-5 * (float(np.abs(c).sum()) + 1e-300)
    if chunk is None:
        chunk = max(1, min(n_permutations, 20_000_000 // max(n, 1)))
    extreme = 0
    done = 0
    while done < n_permutations:
        m = min(chunk, n_permutations - done)
        t = _random_signs(rng, m, n) @ c32
        extreme += int(np.count_nonzero(np.abs(t) >= abs(observed) - tol))
        done += m
    p = (1 + extreme) / (1 + n_permutations)
    return RandomizationResult(observed, float(p), n, n_permutations)


@dataclass(frozen=True)
class BootstrapResult:
    delta: float
    ci: tuple[float, float]
    p_value: float
    n_units: int
    n_resamples: int


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    weights: Sequence[float] | None = None,
    clusters: Sequence[Hashable] | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap over query clusters: percentile CI of the weighted mean difference and a
    two-sided p-value from the H0-shifted bootstrap distribution.

    A resample draws n clusters with replacement and sums their weighted differences, so with
    macro weights the statistic stays an estimate of the macro-averaged delta.
    """
    c, _, cw = _paired_inputs(a, b, weights, clusters)
    n = c.size
    observed = float(c.sum())
    rng = np.random.default_rng(seed)
    stats_ = np.empty(n_resamples)
    chunk = max(1, min(n_resamples, 5_000_000 // max(n, 1)))
    done = 0
    while done < n_resamples:
        m = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(m, n))
        # Normalise by the resampled weight total so a resample is a weighted mean, not a sum
        # whose scale drifts with which clusters happened to be drawn.
        stats_[done : done + m] = c[idx].sum(axis=1) / cw[idx].sum(axis=1) * cw.sum()
        done += m
    alpha = 1.0 - confidence
    lo, hi = np.quantile(stats_, [alpha / 2, 1 - alpha / 2])
    centred = stats_ - stats_.mean()
    p = (1 + int(np.count_nonzero(np.abs(centred) >= abs(observed)))) / (1 + n_resamples)
    return BootstrapResult(observed, (float(lo), float(hi)), float(min(p, 1.0)), n, n_resamples)


def cohens_dz(a: Sequence[float], b: Sequence[float], *, clusters: Sequence[Hashable] | None = None) -> float:
    """Cohen's d for paired samples: mean difference / sd of differences (per query cluster).

    0 when every difference is 0; ±inf when the differences are constant and non-zero.
    """
    _, d, _ = _paired_inputs(a, b, None, clusters)
    if d.size < 2:
        return float("nan")
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd <= 1e-12 * max(1.0, abs(mean)):  # constant differences (up to rounding)
        return 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / sd


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given), capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted.tolist()
