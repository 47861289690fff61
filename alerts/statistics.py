"""Exact counting statistics for the run status: tails, multiple testing, persistence test.

Owns the statistical method of ``alerts.run_status`` (the engine), in plain words:

**Exact tails.** Every monitored quantity of a lumisection is a count: events above an AE
threshold, events passing a classic rule, quarantined events (each out of the ``n`` events
of the lumisection), events per lumisection, DQM maps alerting. Its p-value is the exact
probability of a count at least as far from the expectation, in the direction observed:
binomial (``binomial_tail``) when the expected rate is known (an AE threshold's
p-value, calibrated on the model card's reference sample), beta-binomial
(``beta_binomial_tail``) when the rate comes from a finite reference sample (the reference
run, or the run's other lumisections): the rate is then uncertain by the reference's own
statistics (Jeffreys posterior ``Beta(k_ref + 1/2, n_ref - k_ref + 1/2)``) and, if the
reference's lumisections scatter more than binomially (a robust, trimmed estimate:
``overdispersion``), by that lumisection-to-lumisection spread too (``ExpectedRate``).
Events per lumisection use a Poisson tail, or a negative binomial when the reference
run's lumisections scatter more (``count_tail``). All tails are valid at tiny
expectations: one event above the p = 1e-5 threshold in a 500-event lumisection has
p = 0.005 (2.6 sigma), never "+14 sigma".
Two-sided quantities use ``p = min(1, 2 min(P(X >= k), P(X <= k)))``. ``sigma_from_p``
turns a p-value into the equivalent one-sided Gaussian significance, for display only.

**Multiple testing.** Within a lumisection, the ``m`` quantities tested are corrected
together with Sidak's rule, ``p_corr = 1 - (1 - p)^m`` (``sidak``). A lumisection is
*amber* when its smallest corrected p-value is below ``AMBER_P`` = 0.01, so a clean run
shows at most about one amber lumisection per 100 (fewer: discrete tests are
conservative); *red* only below ``RED_P`` = 2.87e-7, the one-sided 5 sigma of the
discovery convention, so a false red lumisection happens less than once in 3 million.

**Persistence and trends.** A fault too weak to show in one lumisection, or a slow drift,
accumulates over lumisections. Per quantity, one-sided CUSUMs (``cusum``) of the Poisson
log-likelihood ratio ``k ln r - (r - 1) mu`` (``poisson_llr``) for a rate raised by
``r`` = 1.5 (slow drifts) and by ``r`` = 3 (sustained faults), and lowered by 1/1.5,
look for a sustained change. The likelihood ratio from any start lumisection is a
(super)martingale under the expectation, so by Ville's inequality a CUSUM started at one
lumisection ever reaches ``S`` with probability at most ``exp(-S)``: over the ``N``
lumisections of a run, a peak ``S`` has ``p <= N exp(-S)`` (``trend_p``), corrected with
Sidak over every CUSUM of the run (quantities x designs) and cut at the same
``AMBER_P`` / ``RED_P`` per run. The bound is exact for an exact expectation; for one
measured on a finite reference it is approximate, and the designs' margins absorb that:
a CUSUM for ratio ``r`` only drifts upwards when the true rate is above
``(r - 1) / ln r`` times the expectation (1.23x for ``r`` = 1.5, 1.8x for ``r`` = 3),
far beyond a reference's own uncertainty once it holds ~100 counts (the simulated clean
runs of the tests check the resulting rate). Overdispersed quantities divide their
log-likelihood ratio by the overdispersion. A significant excursion's lumisections are
its maximum-likelihood segment (``segment``): the end at the CUSUM's peak, the start and
end refined with the ratio fitted on the segment, so a stray event before a fault does
not pull clean lumisections in.

The same bound serves quantities that are not counts: a per-lumisection p-value ``p_i``
(e.g. a histogram's chi2 against its reference, ``alerts.distribution_checks``) becomes
``z_i = Phi^-1(1 - p_i)`` (``z_from_p``), standard normal under the expectation (or
stochastically smaller for a conservative test), and ``exp(d z_i - d^2 / 2)``
(``gaussian_llr``: the likelihood ratio of a mean shift ``d``) has expectation 1 (at most
1): a CUSUM of it obeys the same ``p <= N exp(-S)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["AMBER_P", "CUSUM_RATIOS", "RED_P", "ExpectedRate", "alarm_segments",
           "beta_binomial_tail",
           "binomial_tail", "count_tail", "cusum", "excursions", "fmt_p", "gaussian_llr",
           "level_of", "overdispersion", "poisson_llr", "poisson_tail", "segment", "sidak",
           "sigma_from_p", "trend_p", "two_sided", "z_from_p"]

#: corrected p-value below which a lumisection (or a run's trend) is amber
AMBER_P = 0.01
#: corrected p-value below which it is red: one-sided 5 sigma
RED_P = float(stats.norm.sf(5.0))
#: CUSUM designs: rate ratios watched (up: slow drift, sustained fault; down)
CUSUM_RATIOS = (1.5, 3.0, 1 / 1.5)


# ------------------------------------------------------------------ exact tails


def poisson_tail(k: float, mu: float, upper: bool = True) -> float:
    """``P(X >= k)`` (upper) or ``P(X <= k)`` for ``X ~ Poisson(mu)``; exact at any ``mu``."""
    k = int(round(k))
    if mu <= 0:
        return 1.0 if (k <= 0 if upper else True) else 0.0
    if upper:
        return 1.0 if k <= 0 else float(stats.poisson.sf(k - 1, mu))
    return 0.0 if k < 0 else float(stats.poisson.cdf(k, mu))


def binomial_tail(k: float, n: int, p: float, upper: bool = True) -> float:
    """``P(X >= k)`` (upper) or ``P(X <= k)`` for ``X ~ Binomial(n, p)``; exact."""
    k, n = int(round(k)), int(n)
    p = min(max(float(p), 0.0), 1.0)
    if upper:
        return 1.0 if k <= 0 else (0.0 if k > n else float(stats.binom.sf(k - 1, n, p)))
    return 0.0 if k < 0 else (1.0 if k >= n else float(stats.binom.cdf(k, n, p)))


def _bb_logpmf(j: np.ndarray, n: int, a: float, b: float) -> np.ndarray:
    return (special.gammaln(n + 1) - special.gammaln(j + 1) - special.gammaln(n - j + 1)
            + special.betaln(j + a, n - j + b) - special.betaln(a, b))


def beta_binomial_tail(k: float, n: int, a: float, b: float, upper: bool = True) -> float:
    """``P(X >= k)`` (upper) or ``P(X <= k)`` for ``X ~ BetaBinomial(n, a, b)``.

    Summed term by term in log space from ``k`` outwards (stopping once the terms are
    negligible), so tiny tails keep their precision (``1 - cdf`` would not).
    """
    k, n = int(round(k)), int(n)
    if upper and k <= 0 or not upper and k >= n:
        return 1.0
    if upper and k > n or not upper and k < 0:
        return 0.0
    mean = n * a / (a + b)
    # the tail on the far side of the mean is small: sum it; else 1 - the other tail
    if (upper and k < mean) or (not upper and k > mean):
        return max(0.0, 1.0 - beta_binomial_tail(k - 1 if upper else k + 1, n, a, b,
                                                 not upper))
    total = -np.inf
    step = 256
    lo = k
    while True:
        if upper:
            j = np.arange(lo, min(lo + step, n + 1), dtype=np.float64)
        else:
            j = np.arange(max(lo - step + 1, 0), lo + 1, dtype=np.float64)[::-1]
        if j.size == 0:
            break
        lp = _bb_logpmf(j, n, a, b)
        total = float(np.logaddexp(total, special.logsumexp(lp)))
        if lp[-1] < total - 40 or (upper and j[-1] >= n) or (not upper and j[-1] <= 0):
            break
        lo = int(j[-1]) + (1 if upper else -1)
        step *= 2
    return float(min(1.0, math.exp(total)))


def count_tail(k: float, mean: float, variance: float, upper: bool = True) -> float:
    """Tail of a count with ``mean``: Poisson when ``variance <= mean``, else a negative
    binomial with that variance (events per lumisection)."""
    if variance <= mean * 1.0001 or mean <= 0:
        return poisson_tail(k, mean, upper)
    r = mean * mean / (variance - mean)
    q = mean / variance
    k = int(round(k))
    if upper:
        return 1.0 if k <= 0 else float(stats.nbinom.sf(k - 1, r, q))
    return 0.0 if k < 0 else float(stats.nbinom.cdf(k, r, q))


@dataclass(frozen=True)
class ExpectedRate:
    """The expected fraction of events of a quantity, and how well it is known.

    ``rate``: expected fraction; ``n_ref`` / ``k_ref``: the finite reference it was measured
    on (``n_ref`` 0: the rate is exact, e.g. an AE threshold's calibrated p-value);
    ``phi``: overdispersion of the reference's lumisections (1: binomial); ``n_lumi``: mean
    events per reference lumisection (to turn ``phi`` into a spread of the rate).
    """

    rate: float
    n_ref: float = 0.0
    k_ref: float = 0.0
    phi: float = 1.0
    n_lumi: float = 0.0

    @classmethod
    def measured(cls, k_ref: float, n_ref: float, phi: float = 1.0,
                 n_lumi: float = 0.0) -> ExpectedRate:
        """The rate measured as ``k_ref`` of ``n_ref`` (Jeffreys posterior mean)."""
        return cls((k_ref + 0.5) / (n_ref + 1.0), float(n_ref), float(k_ref), float(phi),
                   float(n_lumi))

    @property
    def exact(self) -> bool:
        return self.n_ref <= 0 and self.phi <= 1.0

    def variance(self) -> float:
        """Variance of the rate itself (finite reference + lumisection spread)."""
        p = self.rate
        var = p * (1 - p) / (self.n_ref + 2.0) if self.n_ref > 0 else 0.0
        if self.phi > 1.0 and self.n_lumi > 1:
            var += p * (1 - p) * (self.phi - 1.0) / (self.n_lumi - 1.0)
        return var

    def rel_uncertainty(self) -> float:
        """Relative uncertainty of the reference's rate (finite statistics only)."""
        if self.n_ref <= 0:
            return 0.0
        return math.sqrt((1 - self.rate) / max(self.k_ref + 0.5, 0.5))

    def tail(self, k: float, n: int, upper: bool = True) -> float:
        """Exact tail of ``k`` of ``n`` events at this rate (beta-binomial when uncertain)."""
        var = self.variance()
        p = min(max(self.rate, 1e-300), 1 - 1e-12)
        if var <= 0:
            return binomial_tail(k, n, p, upper)
        c = max(p * (1 - p) / var - 1.0, 1e-6)
        return beta_binomial_tail(k, n, c * p, c * (1 - p), upper)

    def p_value(self, k: float, n: int, sides: str = "two") -> tuple[float, str]:
        """(p-value, direction ``"high"`` / ``"low"``) of ``k`` of ``n`` events.

        ``sides``: ``"two"`` (either direction, doubled), ``"high"`` (excess only)."""
        up = self.tail(k, n, True)
        if sides == "high":
            return up, "high"
        down = self.tail(k, n, False)
        return two_sided(up, down), ("high" if up <= down else "low")


def overdispersion(k: Sequence[float] | np.ndarray, n: Sequence[float] | np.ndarray) -> float:
    """Robust overdispersion of per-lumisection counts ``k`` of ``n`` around their median
    rate: the mean squared Pearson residual without the largest 25 % (so a few faulty
    lumisections do not inflate it), over its binomial expectation (0.369). 1 (binomial)
    unless it exceeds ``1 + 3 sqrt(2 / N)`` (3 standard errors for ``N`` lumisections) with
    at least 10 expected counts per lumisection (below, it cannot be told from noise)."""
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    ok = n_arr > 0
    k_arr, n_arr = k_arr[ok], n_arr[ok]
    if k_arr.size < 5 or k_arr.sum() <= 0:
        return 1.0
    p = float(np.median(k_arr / n_arr))  # robust centre: a fault does not move it
    if not 0 < p < 1 or float(np.mean(n_arr * p)) < 10:
        return 1.0
    r2 = np.sort((k_arr - n_arr * p) ** 2 / np.maximum(n_arr * p * (1 - p), 1e-12))
    keep = r2[: max(int(np.floor(0.75 * r2.size)), 1)]
    phi = float(keep.mean()) / 0.3685
    return phi if phi > 1 + 3 * math.sqrt(2 / k_arr.size) else 1.0


def two_sided(p_up: float, p_down: float) -> float:
    """Two-sided p-value of a discrete count: twice the smaller tail, at most 1."""
    return min(1.0, 2.0 * min(p_up, p_down))


def sidak(p: float, m: int) -> float:
    """Sidak's correction of ``p`` for ``m`` tests: ``1 - (1 - p)^m``."""
    if m <= 1:
        return min(max(p, 0.0), 1.0)
    return float(-np.expm1(m * np.log1p(-min(max(p, 0.0), 1.0 - 1e-16))))


def sigma_from_p(p: float) -> float:
    """The one-sided Gaussian significance equivalent to ``p`` (display only)."""
    if not p > 0:
        return math.inf
    return float(stats.norm.isf(min(p, 1.0)))


def level_of(p_corrected: float, amber: float = AMBER_P) -> str:
    """``red`` below ``RED_P``, ``amber`` below ``amber`` (default ``AMBER_P``), else
    ``green``."""
    if p_corrected < RED_P:
        return "red"
    if p_corrected < amber:
        return "amber"
    return "green"


def fmt_p(p: float) -> str:
    """A p-value for people: ``0.03``, ``3e-9``, ``< 1e-300`` (see ``p_is``)."""
    if not p > 1e-300:
        return "< 1e-300"
    if p >= 0.01:
        return f"{p:.2g}"
    m, e = f"{p:.0e}".split("e")
    return f"{m}e{int(e)}"


def p_is(p: float) -> str:
    """``"p = 3e-9"``, or ``"p < 1e-300"`` beyond double precision."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


# ------------------------------------------------------------------ persistence / trend


def poisson_llr(k: np.ndarray, mu: np.ndarray, ratio: float, scale: float = 1.0) -> np.ndarray:
    """Per-lumisection log-likelihood ratio of a rate ``ratio`` x ``mu`` against ``mu``."""
    k = np.asarray(k, dtype=float)
    mu = np.asarray(mu, dtype=float)
    return (k * math.log(ratio) - (ratio - 1.0) * mu) / max(scale, 1.0)


def z_from_p(p: np.ndarray | Sequence[float]) -> np.ndarray:
    """``Phi^-1(1 - p)``: a p-value as a standard normal score (large: significant), finite
    (p clipped to [1e-300, 1])."""
    return np.asarray(stats.norm.isf(np.clip(np.asarray(p, dtype=float), 1e-300, 1.0)))


def gaussian_llr(z: np.ndarray, shift: float) -> np.ndarray:
    """Per-lumisection log-likelihood ratio ``shift z - shift^2 / 2`` of ``N(shift, 1)``
    against ``N(0, 1)`` for scores ``z`` (``z_from_p``)."""
    return shift * np.asarray(z, dtype=float) - 0.5 * shift * shift


def cusum(llr: np.ndarray) -> np.ndarray:
    """``S_t = max(0, S_{t-1} + llr_t)``, ``S_{-1} = 0``."""
    out = np.empty(len(llr))
    s = 0.0
    for i, x in enumerate(llr):
        s = max(0.0, s + float(x))
        out[i] = s
    return out


def excursions(s: np.ndarray) -> list[tuple[int, int, float]]:
    """Each excursion of a CUSUM above zero: (first index, index of its peak, peak)."""
    out = []
    i, n = 0, len(s)
    while i < n:
        if s[i] <= 0:
            i += 1
            continue
        j = i
        while j + 1 < n and s[j + 1] > 0:
            j += 1
        peak = i + int(np.argmax(s[i:j + 1]))
        out.append((i, peak, float(s[peak])))
        i = j + 1
    return out


def alarm_segments(llr: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """A CUSUM of ``llr`` that restarts after each alarm: (first index, last index, height)
    of each excursion that reached ``threshold``. The alarm's segment runs from the
    excursion's start while the increments stay positive after the crossing (the change
    goes on); the first non-positive increment ends it and the CUSUM restarts at 0, so a
    large change does not keep the statistic (and its alarm) up long after it ended."""
    out: list[tuple[int, int, float]] = []
    s, start, alarmed = 0.0, 0, False
    for j, x in enumerate(np.asarray(llr, dtype=float)):
        if alarmed and x <= 0:
            out.append((start, j - 1, s))
            s, alarmed = 0.0, False
            continue
        if s <= 0:
            start = j
        s = max(0.0, s + float(x))
        alarmed = alarmed or s >= threshold
    if alarmed:
        out.append((start, len(llr) - 1, s))
    return out


def trend_p(peak: float, n_starts: int) -> float:
    """Bound on the p-value of a CUSUM peak over ``n_starts`` start lumisections (Ville)."""
    return float(min(1.0, n_starts * math.exp(-min(peak, 700.0))))


def segment(k: np.ndarray, mu: np.ndarray, first: int, last: int,
            up: bool = True) -> tuple[int, int, float]:
    """Maximum-likelihood segment inside ``first..last`` (inclusive): (start, end, ratio).

    The segment maximising the Poisson generalised likelihood ratio
    ``K ln(K / M) - (K - M)`` (``K`` counts, ``M`` expected over the segment, the ratio
    fitted on it) among those changed in the direction watched (``up``: ``K > M``), so a
    fault's lumisections are kept and clean ones around it, which would dilute the fitted
    ratio, are not.
    """
    kk = np.asarray(k, dtype=float)[first:last + 1]
    mm = np.asarray(mu, dtype=float)[first:last + 1]
    ck = np.concatenate([[0.0], np.cumsum(kk)])
    cm = np.concatenate([[0.0], np.cumsum(mm)])
    best, bs, be = -np.inf, 0, 0
    for e in range(1, ck.size):
        ks = ck[e] - ck[:e]
        ms = cm[e] - cm[:e]
        with np.errstate(divide="ignore", invalid="ignore"):
            glr = np.where(ks > 0, ks * np.log(np.where(ks > 0, ks, 1.0) / np.maximum(ms, 1e-300)),
                           0.0) - (ks - ms)
        ok = (ks > ms) if up else (ks < ms)
        glr = np.where(ok & (ms > 0), glr, -np.inf)
        j = int(np.argmax(glr))
        if glr[j] > best:
            best, bs, be = float(glr[j]), j, e - 1
    if not np.isfinite(best):
        return first, last, 1.0
    ksum, msum = ck[be + 1] - ck[bs], cm[be + 1] - cm[bs]
    return first + bs, first + be, float(ksum / msum) if msum > 0 else float("inf")
