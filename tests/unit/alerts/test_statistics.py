"""Exact tails, multiple testing and the CUSUM bound of alerts.statistics, against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hotline.alerts.statistics import (
    AMBER_P,
    RED_P,
    ExpectedRate,
    alarm_segments,
    beta_binomial_tail,
    binomial_tail,
    count_tail,
    cusum,
    excursions,
    fmt_p,
    gaussian_llr,
    level_of,
    overdispersion,
    poisson_llr,
    poisson_tail,
    segment,
    sidak,
    sigma_from_p,
    trend_p,
    z_from_p,
)


def test_one_event_at_tiny_expectation_is_p_0005_not_14_sigma():
    # one event above the p = 1e-5 threshold in a 500-event lumisection
    p = binomial_tail(1, 500, 1e-5)
    assert p == pytest.approx(1 - (1 - 1e-5) ** 500, rel=1e-9)
    assert p == pytest.approx(0.005, rel=0.01)
    assert poisson_tail(1, 0.005) == pytest.approx(1 - math.exp(-0.005), rel=1e-9)
    assert sigma_from_p(p) == pytest.approx(2.576, abs=0.01)  # not (1 - 0.005)/sqrt(0.005)=14
    assert level_of(sidak(2 * p, 20)) == "green"


def test_binomial_and_poisson_tails_match_direct_sums():
    n, q = 40, 0.07
    pmf = [math.comb(n, j) * q**j * (1 - q) ** (n - j) for j in range(n + 1)]
    for k in (0, 1, 3, 9, 25, 40):
        assert binomial_tail(k, n, q, True) == pytest.approx(sum(pmf[k:]), rel=1e-9)
        assert binomial_tail(k, n, q, False) == pytest.approx(sum(pmf[: k + 1]), rel=1e-9)
    assert binomial_tail(41, n, q) == 0.0 and binomial_tail(0, n, q) == 1.0
    # a tiny tail keeps its precision: P(X >= 30 | Poisson(2))
    direct = sum(math.exp(-2) * 2**j / math.factorial(j) for j in range(30, 80))
    assert poisson_tail(30, 2.0) == pytest.approx(direct, rel=1e-9)
    assert poisson_tail(0, 2.0, upper=False) == pytest.approx(math.exp(-2))


@pytest.mark.parametrize("k,upper", [(0, True), (2, True), (30, True), (120, True), (3, False),
                                     (0, False), (60, False)])
def test_beta_binomial_tail_matches_summed_pmf(k, upper):
    n, a, b = 500, 2.5, 400.0
    js = np.arange(k, n + 1) if upper else np.arange(0, k + 1)
    direct = float(stats.betabinom.pmf(js, n, a, b).sum())
    assert beta_binomial_tail(k, n, a, b, upper) == pytest.approx(direct, rel=1e-7, abs=1e-300)


def test_finite_reference_widens_the_tail():
    exact = ExpectedRate(0.004)
    measured = ExpectedRate.measured(79.5, 20_000)  # same rate, from 80 reference counts
    assert measured.rate == pytest.approx(0.004, rel=1e-3)
    # 8 of 500 where 2 are expected: less significant when the rate is itself uncertain
    assert measured.tail(8, 500) > exact.tail(8, 500)
    assert measured.tail(8, 500) < 3 * exact.tail(8, 500)
    p, direction = measured.p_value(0, 500)
    assert direction == "low" and p > 0.1


def test_count_tail_negative_binomial_when_overdispersed():
    assert count_tail(480, 500, 0.0, upper=False) == pytest.approx(
        stats.poisson.cdf(480, 500))
    assert count_tail(400, 500, 2500.0, upper=False) > count_tail(400, 500, 500.0, upper=False)


def test_overdispersion_robust_to_a_few_faulty_lumisections():
    rng = np.random.default_rng(3)
    n = np.full(60, 500)
    k = rng.binomial(n, 0.1).astype(float)
    assert overdispersion(k, n) == 1.0
    k[10:14] *= 3  # a fault must not make the reference look overdispersed
    assert overdispersion(k, n) == 1.0
    wide = rng.binomial(n, rng.uniform(0.05, 0.15, 60)).astype(float)
    assert overdispersion(wide, n) > 2


def test_cuts_and_formatting():
    assert level_of(AMBER_P * 1.01) == "green"
    assert level_of(AMBER_P * 0.99) == "amber"
    assert level_of(RED_P * 0.99) == "red"
    assert RED_P == pytest.approx(2.87e-7, rel=0.01)
    assert sidak(0.001, 10) == pytest.approx(1 - 0.999**10)
    assert fmt_p(3e-9) == "3e-9" and fmt_p(0.034) == "0.034" and fmt_p(0.0) == "< 1e-300"


def test_cusum_false_alarm_rate_is_bounded():
    """Ville's bound p <= N exp(-S): on clean Poisson series a CUSUM peak reaches p < 0.01
    in well under 1 % of runs (any rate, tiny to large)."""
    rng = np.random.default_rng(11)
    alarms, runs = 0, 600
    for r in range(runs):
        mu = np.full(50, [0.3, 2.0, 40.0][r % 3])
        k = rng.poisson(mu)
        for ratio in (1.5, 3.0, 1 / 1.5):
            s = cusum(poisson_llr(k, mu, ratio))
            if s.max() > 0 and trend_p(s.max(), 50) < 0.01:
                alarms += 1
    assert alarms <= 0.01 * runs * 3


def test_segment_finds_the_fault_not_a_stray_event_before_it():
    mu = np.full(40, 0.5)
    k = np.zeros(40)
    k[10] = 2  # a stray pair of events long before
    k[25:33] = [5, 4, 6, 3, 5, 7, 4, 5]
    s = cusum(poisson_llr(k, mu, 3.0))
    (first, peak, height), *_ = [e for e in excursions(s) if e[2] > 10]
    assert peak == 32 and trend_p(height, 40) < 1e-10
    a, b, ratio = segment(k, mu, first, peak, up=True)
    assert (a, b) == (25, 32) and ratio == pytest.approx(39 / 4)


def test_normal_score_cusum_is_a_martingale_and_ville_bounds_it():
    """A p-value as a normal score: ``exp(d z - d^2 / 2)`` has mean 1 under the null, so a
    CUSUM of it (restarted after alarms) reaches ``S`` over ``N`` lumisections with
    probability at most ``N exp(-S)``."""
    rng = np.random.default_rng(4)
    p = rng.random(200_000)
    z = z_from_p(p)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert z_from_p([0.5])[0] == pytest.approx(0.0) and np.isfinite(z_from_p([0.0])[0])
    for d in (1.0, 2.5):
        assert np.exp(gaussian_llr(z, d)).mean() == pytest.approx(1.0, rel=0.05)
    # 2000 clean runs of 40 lumisections: an alarm at S >= ln(40 / 0.05) in < 5 % of them
    n, alpha = 40, 0.05
    hits = sum(bool(alarm_segments(gaussian_llr(z_from_p(rng.random(n)), 1.0),
                                   np.log(n / alpha))) for _ in range(2000))
    assert hits <= alpha * 2000


def test_alarm_segments_restart_after_the_change_ends():
    llr = np.array([-1.0, 0.5, 3.0, 4.0, 2.0, -0.5, 0.2, -3.0, 0.1, 6.0])
    # the first excursion starts at index 1, alarms at 2 (3.5 >= 3), goes on while the
    # increments stay positive (up to 4), ends at the first non-positive one; the CUSUM
    # restarts at 0 and alarms again at the last index
    assert alarm_segments(llr, 3.0) == [(1, 4, 9.5), (8, 9, 6.1)]
    assert alarm_segments(np.array([1.0, 1.0, -5.0, 1.0]), 3.0) == []
    assert level_of(5e-4, amber=1e-3) == "amber" and level_of(2e-3, amber=1e-3) == "green"
