"""polyret.stats checked against scipy and ranx on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from polyret.stats import (
    cohens_dz,
    holm,
    macro_weights,
    mean_ci,
    paired_bootstrap,
    paired_randomization_test,
)


def test_mean_ci_matches_scipy_t_interval():
    x = [0.712, 0.731, 0.698]
    got = mean_ci(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert got.n == 3
    assert got.mean == pytest.approx(np.mean(x))
    assert got.ci95 == pytest.approx((lo, hi), rel=1e-12)
    assert got.std == pytest.approx(np.std(x, ddof=1))


def test_mean_ci_single_value_has_no_interval_and_nan_is_dropped():
    one = mean_ci([0.5])
    assert one.mean == 0.5 and one.ci95 is None and one.n == 1
    two = mean_ci([0.5, float("nan"), 0.7])
    assert two.n == 2 and two.mean == pytest.approx(0.6)
    # t(0.975, 1) = 12.706: two seeds give a wide interval, as they should.
    assert two.ci95[1] - two.ci95[0] == pytest.approx(2 * 12.7062 * np.std([0.5, 0.7], ddof=1) / math.sqrt(2), rel=1e-4)
    assert mean_ci([]).n == 0


def test_macro_weights_reproduce_nested_macro_average():
    rng = np.random.default_rng(1)
    # Unbalanced: English has many more queries (MLQA-R shape).
    groups = [("en",)] * 50 + [("de",)] * 5 + [("hi",)] * 2
    x = rng.random(len(groups))
    w = macro_weights(groups)
    per_lang = [x[:50].mean(), x[50:55].mean(), x[55:].mean()]
    assert w.sum() == pytest.approx(1.0)
    assert float(w @ x) == pytest.approx(np.mean(per_lang))
    # Two levels: mean over sources of (mean over targets of cell means).
    cells = {("en", "de"): 7, ("en", "hi"): 3, ("de", "en"): 4, ("de", "hi"): 1, ("de", "zh"): 2, ("hi", "en"): 5}
    groups2, vals, expected_src = [], [], {}
    for (s, t), k in cells.items():
        v = rng.random(k)
        groups2 += [(s, t)] * k
        vals += list(v)
        expected_src.setdefault(s, []).append(v.mean())
    w2 = macro_weights(groups2)
    assert float(w2 @ np.array(vals)) == pytest.approx(np.mean([np.mean(v) for v in expected_src.values()]))
    assert macro_weights(None, n=4) == pytest.approx([0.25] * 4)


def test_randomization_test_matches_scipy_exact_permutation_test():
    rng = np.random.default_rng(3)
    a = rng.normal(0.55, 0.2, 12)
    b = a - rng.normal(0.08, 0.15, 12)
    ours = paired_randomization_test(a, b, n_permutations=40_000, seed=5)
    exact = sps.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=np.inf,
        vectorized=True,
    )
    assert ours.delta == pytest.approx(np.mean(a - b))
    assert 0.005 < exact.pvalue < 0.5  # a non-trivial case
    assert ours.p_value == pytest.approx(exact.pvalue, abs=0.01)


def test_randomization_test_agrees_with_ranx_fisher():
    from ranx.statistical_tests import fisher_randomization_test

    rng = np.random.default_rng(11)
    control = rng.random(300)
    treatment = np.clip(control + rng.normal(0.02, 0.2, 300), 0, 1)
    p_ranx, _ = fisher_randomization_test(control, treatment, 5000, 0.05, 42)
    ours = paired_randomization_test(treatment, control, n_permutations=5000, seed=1)
    assert 0.02 < p_ranx < 0.8
    # Both are Monte-Carlo estimates of the same p; MC sd at p≈0.3 with 5000 draws is ≈0.0065.
    assert ours.p_value == pytest.approx(p_ranx, abs=0.03)


def test_randomization_test_weights_and_clusters():
    rng = np.random.default_rng(7)
    a, b = rng.random(40), rng.random(40)
    plain = paired_randomization_test(a, b, n_permutations=3000, seed=2)
    # Balanced groups: macro weights equal uniform weights, so the same seed gives the same p.
    balanced = paired_randomization_test(
        a, b, weights=macro_weights([("x",)] * 20 + [("y",)] * 20), n_permutations=3000, seed=2
    )
    assert balanced.p_value == pytest.approx(plain.p_value) and balanced.delta == pytest.approx(plain.delta)
    # Every query duplicated, duplicates in one cluster: identical test.
    dup = paired_randomization_test(
        np.repeat(a, 2), np.repeat(b, 2), clusters=np.repeat(np.arange(40), 2), n_permutations=3000, seed=2
    )
    assert dup.n_units == 40
    assert dup.p_value == pytest.approx(plain.p_value) and dup.delta == pytest.approx(plain.delta)
    # Without the clusters the duplicates would (wrongly) look like 80 independent queries: smaller p.
    naive = paired_randomization_test(np.repeat(a, 2), np.repeat(b, 2), n_permutations=3000, seed=2)
    assert naive.n_units == 80
    # Unbalanced groups: the delta is the macro delta.
    groups = [("en",)] * 30 + [("de",)] * 10
    d = a - b
    wtd = paired_randomization_test(a, b, weights=macro_weights(groups), n_permutations=500)
    assert wtd.delta == pytest.approx((d[:30].mean() + d[30:].mean()) / 2)


def test_randomization_p_values_are_calibrated_under_null_and_small_under_effect():
    rng = np.random.default_rng(0)
    ps = []
    for i in range(300):
        a = rng.random(30)
        b = a + rng.normal(0, 0.1, 30)
        ps.append(paired_randomization_test(a, b, n_permutations=400, seed=i).p_value)
    rejected = np.mean(np.array(ps) < 0.05)
    assert 0.02 <= rejected <= 0.09
    a = rng.random(200)
    strong = paired_randomization_test(a + 0.05, a + rng.normal(0, 0.05, 200), n_permutations=2000)
    assert strong.p_value == pytest.approx(1 / 2001)
    same = paired_randomization_test(a, a, n_permutations=100)
    assert same.p_value == 1.0 and same.delta == 0.0


def test_paired_bootstrap_matches_scipy_bootstrap():
    rng = np.random.default_rng(4)
    a = rng.random(150)
    b = np.clip(a - rng.normal(0.03, 0.1, 150), 0, 1)
    ours = paired_bootstrap(a, b, n_resamples=4000, seed=3)
    ref = sps.bootstrap((a - b,), np.mean, n_resamples=4000, method="percentile", random_state=9)
    assert ours.delta == pytest.approx(np.mean(a - b))
    assert ours.ci[0] == pytest.approx(ref.confidence_interval.low, abs=0.004)
    assert ours.ci[1] == pytest.approx(ref.confidence_interval.high, abs=0.004)
    assert ours.ci[0] < ours.delta < ours.ci[1]
    # Bootstrap p and randomization p agree roughly on the same data.
    rand = paired_randomization_test(a, b, n_permutations=4000)
    assert ours.p_value == pytest.approx(rand.p_value, abs=0.02)


def test_cohens_dz_matches_paired_t_statistic():
    rng = np.random.default_rng(8)
    a = rng.random(60)
    b = a - rng.normal(0.1, 0.3, 60)
    t = sps.ttest_rel(a, b).statistic
    assert cohens_dz(a, b) == pytest.approx(t / math.sqrt(60))
    assert cohens_dz(a, a) == 0.0
    assert cohens_dz(a + 1, a) == math.inf


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        paired_randomization_test([1, 2], [1])
    with pytest.raises(ValueError):
        paired_randomization_test([], [])
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, float("nan")], [1.0, 2.0])


def test_weighted_clustered_sign_flip_matches_exact_enumeration():
    """The weighted, clustered test against an exact permutation test computed independently: all
    2^k sign assignments to the k clusters, each applied to the raw per-query differences with their
    weights (no code shared with paired_randomization_test)."""
    import itertools

    rng = np.random.default_rng(7)
    k = 11
    sizes = rng.integers(1, 5, size=k)  # unequal clusters (e.g. translations of one question)
    clusters = np.repeat(np.arange(k), sizes)
    langs = rng.choice(["de", "ar", "zh"], size=clusters.size, p=[0.6, 0.3, 0.1])
    weights = macro_weights([(l,) for l in langs])  # languages weighted equally, unequal counts
    a = rng.normal(0.55, 0.2, clusters.size)
    b = a - rng.normal(0.04, 0.1, clusters.size)
    d = a - b
    observed = float(np.sum(weights * d))
    extreme = 0
    for signs in itertools.product((-1.0, 1.0), repeat=k):
        s = np.asarray(signs)[clusters]
        extreme += abs(float(np.sum(weights * s * d))) >= abs(observed) - 1e-12
    exact = extreme / 2**k
    n = 200_000
    ours = paired_randomization_test(a, b, weights=weights, clusters=clusters, n_permutations=n, seed=3)
    assert ours.delta == pytest.approx(observed, rel=1e-12)
    assert ours.n_units == k
    # Monte Carlo error of a p-value estimated from n draws, plus the (1 + ...) / (1 + n) correction
    assert abs(ours.p_value - exact) < 5 * np.sqrt(exact * (1 - exact) / n) + 2 / n, (ours.p_value, exact)
    # and a test that ignored the clusters (queries as units) would give a different answer here
    naive = paired_randomization_test(a, b, weights=weights, n_permutations=n, seed=3)
    assert abs(naive.p_value - exact) > 5 * np.sqrt(exact * (1 - exact) / n), (naive.p_value, exact)
