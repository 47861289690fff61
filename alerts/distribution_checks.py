"""Distribution checks: each lumisection's histograms against the reference, localised.

Owns the tests of the per-lumisection histograms (``LumiSummary.hists``,
``detectors.event_histograms``) that the run-status engine (``alerts.run_status``) adds
to its per-lumisection quantities as kind ``"dist"``:

**Test.** A two-sample chi2 (``chi2_test``) of the lumisection's histogram
(or of the sum over a sliding window of ``w`` lumisections ending there) against the
reference histogram: the reference run's (``Reference.hists``), or, without one, the
sum of the run's other lumisections (leave-one-out) without those red by their own
tests. It tests the *shape* (both
normalised; the counts themselves are the count quantities' job) with both samples'
statistical uncertainty, bin group by bin group as AutoDQM does per bin: given a group's
pooled entries ``N_g = O_g + R_g`` (``n``, ``m`` the two totals), ``O_g`` is binomial
``(N_g, n / (n + m))`` under the reference's shape; its likelihood-ratio deviance
(Williams-corrected) is the group's squared normal score (``group_z2``: Pearson's
``(sqrt(m/n) O_g - sqrt(n/m) R_g)^2 / (O_g + R_g)`` where counts are large, with a chi2
tail that stays right at a few entries, where Pearson's is far too heavy for a 1e-3
budget) and ``X2 = sum_g z_g^2``
over bin groups ``g``, ``ndf`` = groups - 1. For histograms resolved by detector region
(``<type>/pt_region``, ``<type>/etaphi``) a change confined to one region would be
diluted among all regions' degrees of freedom, so each region is tested too (its groups'
contributions, chi2 with one degree of freedom per group) and the histogram's p-value is
``sidak(min(p_global, sidak(min_r p_r, regions)), 2)``. Adjacent bins are merged within a row (a
detector region's pT bins, an eta row of the eta-phi map) until each group expects at
least ``MIN_EXPECTED`` entries in the smaller sample; rows too sparse for one group are
pooled into one group. If the reference run's own lumisections scatter more than
multinomially, ``X2`` is divided by that overdispersion (``hist_scale``, measured on the
reference's lumisections). p-values are chi2 tails (``dist_tests``), corrected by the
family's own rule below (``dist_findings``).

**Windows say which lumisection.** A window's test belongs to its last lumisection, but
a change that ended a lumisection earlier still fills the window for ``w - 1`` more
lumisections. So a window test with ``p < SUPPORT_GATE_P`` is kept only if its last
lumisection moves the way the window's other lumisections moved against the reference
(``support_z``: the projection of its shape difference on theirs, a normal score under
the null, at least ``SUPPORT_Z``); a clean lumisection after a fault scores near 0 and
is not flagged, one inside a faint sustained change scores high. This only removes
findings, so the budget below still holds.

**Spread.** A reference run differs from the tested run by more than statistics when
conditions change (run-to-run spread), and a run's own lumisections may scatter more
than multinomially (without a reference). Per histogram and window, the lower quartile
over the run's lumisections (those red by their own tests left out) of ``X2`` / chi2's
lower quartile measures that spread, robust against a fault in most of the run
(``run_spread``, with at least ``MIN_SPREAD_TESTS`` tests); beyond 4 standard errors
above 1, ``X2`` is divided by it too, at most by ``MAX_SPREAD`` (a larger difference is
a difference to report, not spread).

**The distribution family's false-alarm budget** (``dist_findings``), separate from the
count quantities' 1 % amber level of ``alerts.run_status``: ``DIST_ALPHA`` = 1e-3 false
alarms per clean lumisection for all distribution tests together. Nine tenths of it
(``DIST_AMBER_P``) go to the lumisection's own tests: each p-value is Sidak-corrected
over the ``m`` tests of that lumisection (every histogram, alone and in its window),
``p_corr = 1 - (1 - p)^m``, amber below ``DIST_AMBER_P``; Sidak holds exactly for
independent tests and is conservative for these positively correlated ones (the same
objects fill a type's histograms). The rest (``TREND_AMBER_P`` = 1e-4 per run) goes to
the trends: per histogram, the per-lumisection p-values as normal scores
``z = Phi^-1(1 - p)``, CUSUMs of ``d z - d^2 / 2`` for mean shifts ``d`` in
``TREND_SHIFTS`` (slow drift, sustained change) bounded with Ville's inequality as the
rate CUSUMs (``alerts.statistics``: a peak ``S`` over ``N`` lumisections has ``p <= N
exp(-S)``), Sidak over every CUSUM of the run, restarted after each alarm once the
change is over (``alarm_segments``); a trend finding covers its alarm's
maximum-likelihood segment (``ml_mean_segment``), not the clean lumisections that
happened to start or prolong the excursion. A false trend flags a few lumisections once
per 10,000 runs, so the family stays within 1e-3 per clean lumisection. Red is the
engine's red: corrected p below ``RED_P`` (one-sided 5 sigma).

**Localisation.** Each group's contribution to ``X2`` is assigned to the detector region
(eta-phi cell) of its bins; the finding names the object type, the variable and the
region contributing most (or "all regions" when at least half of them changed), with
the direction (pT / MET / HT: the mean shift as a factor; occupancy: the cell's fraction
against the reference's). A test without regions (a type's pT, phi, multiplicity)
borrows the region of its type's most significant regional test in the same window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from hotline.alerts.lumi_status import Finding
from hotline.alerts.statistics import (
    RED_P,
    alarm_segments,
    gaussian_llr,
    level_of,
    p_is,
    sidak,
    trend_p,
    z_from_p,
)
from hotline.detectors.event_histograms import HistBook, HistLayout, LumiHists, book_for
from hotline.errors import StreamError

__all__ = ["DIST_ALPHA", "DIST_AMBER_P", "MAX_SPREAD", "MIN_ENTRIES", "MIN_EXPECTED",
           "MIN_SPREAD_TESTS", "SUPPORT_Z", "TREND_AMBER_P", "TREND_SHIFTS", "WINDOWS",
           "Chi2", "chi2_test", "dist_findings", "dist_tests", "dist_trends", "family_correct",
           "hist_scales", "ml_mean_segment", "run_spread", "sum_hists", "support_z"]

#: minimum expected entries per bin group in the smaller sample
MIN_EXPECTED = 5.0
#: a histogram is tested only with at least this many entries on each side
MIN_ENTRIES = 20
#: a regional test lends its region to its type's other findings below this p-value
LOCATE_P = 0.01
#: sliding windows tested: 1 (the lumisection alone) and 5 lumisections ending there
WINDOWS = (1, 5)
#: a window test this significant is kept at its last lumisection only if that one moves
#: the way the window's earlier lumisections moved (``support_z``) by this normal score
SUPPORT_Z = 2.326  # one-sided p = 0.01
#: below this (uncorrected) p a window test needs its last lumisection's support
SUPPORT_GATE_P = 0.05
#: false alarms per clean lumisection of the whole distribution family (amber)
DIST_ALPHA = 1e-3
#: the share of it the trends get (per run)
TREND_SHARE = 0.1
#: amber cut of a lumisection's own distribution tests after Sidak over them
DIST_AMBER_P = DIST_ALPHA * (1 - TREND_SHARE)
#: amber cut of the distribution trends after Sidak over the run's CUSUMs
TREND_AMBER_P = DIST_ALPHA * TREND_SHARE
#: mean shifts of the per-lumisection normal score the CUSUMs watch (drift, sustained)
TREND_SHIFTS = (1.0, 2.5)
#: a trend needs this many tested lumisections of a histogram
MIN_TREND_LUMIS = 3
#: the spread of a run against its reference is measured on at least this many tests
MIN_SPREAD_TESTS = 10
#: X2 is divided by at most this spread (beyond: a difference, not spread)
MAX_SPREAD = 3.0


@dataclass(frozen=True)
class Chi2:
    """One chi2 test: statistic, degrees of freedom, p-value, the entries compared and
    where it comes from (``region``: the region contributing most, -1 none; ``share``:
    its part of ``chi2``; ``detail``: direction in words)."""

    chi2: float
    ndf: int
    p: float
    n_obs: int
    n_ref: int
    region: int = -1
    share: float = 0.0
    detail: str = ""
    n_regions: int = 0  #: regions tested
    n_changed: int = 0  #: regions with their own p below ``LOCATE_P``


def _groups(e: np.ndarray, row_len: int, min_expected: float) -> np.ndarray:
    """Group id per bin (-1: empty in both samples; 0: the pooled group of the rows too
    sparse for one group of their own); see the module docstring. Greedy along each row:
    a group closes once it expects ``min_expected``; a last group below that joins its
    predecessor in the row."""
    size = e.size
    rows = size // row_len
    values = e.tolist()
    gid = [0] * size
    next_id = 1
    for row in range(rows):
        lo, hi = row * row_len, (row + 1) * row_len
        if sum(values[lo:hi]) < min_expected:
            continue  # pooled group 0
        first = next_id
        acc = 0.0
        for j in range(lo, hi):
            gid[j] = next_id
            acc += values[j]
            if acc >= min_expected:
                next_id += 1
                acc = 0.0
        if acc > 0.0 or gid[hi - 1] == next_id:  # an unfinished last group
            if next_id > first:  # joins the row's previous group
                for j in range(hi - 1, lo - 1, -1):
                    if gid[j] != next_id:
                        break
                    gid[j] = next_id - 1
            else:
                next_id += 1
    out = np.asarray(gid, dtype=np.int64)
    out[e <= 0] = -1
    return out


def _chi2_sf(x2: np.ndarray | float, ndf: np.ndarray | int) -> np.ndarray:
    """chi2 tail (vectorised; 1 where ``ndf`` <= 0)."""
    x = np.asarray(x2, dtype=np.float64)
    d = np.asarray(ndf, dtype=np.float64)
    return np.where(d > 0, special.chdtrc(np.maximum(d, 1.0), np.maximum(x, 0.0)), 1.0)


def group_z2(og: np.ndarray, rg: np.ndarray, n: float, m: float) -> np.ndarray:
    """Per bin group, the squared normal score of its two-sample test: given the group's
    pooled entries ``N = O + R``, ``O ~ Binomial(N, pi = n / (n + m))`` under the
    reference's shape; the score is the binomial deviance (likelihood ratio)
    ``2 [O ln(O / N pi) + (N - O) ln((N - O) / N (1 - pi))]`` over Williams' correction
    ``1 + (1 / pi + 1 / (1 - pi) - 1) / (6 N)`` (Pearson's ``(O - N pi)^2 / (N pi (1 - pi))``
    where counts are large; unlike Pearson's, its chi2 tail stays right at a few
    entries)."""
    pi = n / (n + m)
    total = og + rg
    mu = total * pi
    rest = total - og
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(og > 0, og * np.log(og / np.maximum(mu, 1e-300)), 0.0)
        t2 = np.where(rest > 0, rest * np.log(rest / np.maximum(total - mu, 1e-300)), 0.0)
        q = 1.0 + (1.0 / pi + 1.0 / (1.0 - pi) - 1.0) / (6.0 * np.maximum(total, 1.0))
    return np.maximum(2.0 * (t1 + t2), 0.0) / q


def chi2_test(obs: np.ndarray, ref: np.ndarray, layout: HistLayout | None = None,
              scale: float = 1.0, min_expected: float = MIN_EXPECTED,
              log_width: float = 0.0) -> Chi2 | None:
    """Two-sample chi2 of ``obs`` against ``ref`` (same bins); None when either has fewer
    than ``MIN_ENTRIES`` entries or fewer than two bin groups are left."""
    o = np.asarray(obs, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    n, m = float(o.sum()), float(r.sum())
    if n < MIN_ENTRIES or m < MIN_ENTRIES or o.size != r.size:
        return None
    row_len = layout.row_len if layout is not None and o.size % layout.row_len == 0 else o.size
    e = (o + r) * min(n, m) / (n + m)
    gid = _groups(e, row_len, min_expected)
    ok = gid >= 0
    present = np.zeros(int(gid.max()) + 2, bool)
    present[gid[ok]] = True
    n_groups = int(present.sum())
    if n_groups < 2:
        return None
    inv = (np.cumsum(present) - 1)[gid[ok]]
    og = np.bincount(inv, weights=o[ok], minlength=n_groups)
    rg = np.bincount(inv, weights=r[ok], minlength=n_groups)
    contrib = group_z2(og, rg, n, m) / max(scale, 1.0)
    x2 = float(contrib.sum())
    ndf = n_groups - 1
    p = float(_chi2_sf(x2, ndf))
    region, share, detail, n_tested, n_changed = -1, 0.0, "", 0, 0
    if layout is not None and layout.region_of_bin is not None:
        # each group's contribution goes to the region of its fullest bin
        bins = np.flatnonzero(ok)
        fullest = np.full(n_groups, -1, np.int64)
        weight = (o + r)[bins]
        order = np.lexsort((weight, inv))  # within each group, the fullest bin last
        fullest[inv[order]] = bins[order]
        reg = layout.region_of_bin[fullest]
        n_reg = len(layout.region_labels)
        per = np.bincount(reg, weights=contrib, minlength=n_reg)
        dof = np.bincount(reg, minlength=n_reg)
        tested = dof > 0
        p_reg = _chi2_sf(per, dof)
        region = int(np.argmin(np.where(tested, p_reg, 2.0)))
        share = float(per[region] / x2) if x2 > 0 else 0.0
        # the region scan: the most significant region, Sidak over the regions tested,
        # then the better of scan and global test, Sidak over the two
        n_tested = int(tested.sum())
        n_changed = int((p_reg[tested] < LOCATE_P).sum())
        p_scan = sidak(float(p_reg[region]), n_tested)
        p = sidak(min(p, p_scan), 2)
        in_r = layout.region_of_bin == region
        detail = _direction(o, r, in_r, layout, log_width)
    elif layout is not None:
        detail = _direction(o, r, np.ones(o.size, bool), layout, log_width)
    return Chi2(x2, ndf, p, int(n), int(m), region, share, detail, n_tested, n_changed)


def support_z(one: np.ndarray, rest: np.ndarray, ref: np.ndarray,
              layout: HistLayout | None = None, scale: float = 1.0,
              min_expected: float = MIN_EXPECTED) -> float | None:
    """How much the lumisection ``one`` moves along the change of ``rest`` (the window's
    other lumisections) against ``ref``, as a normal score (None when a sample is too
    small to say).

    The direction is the rest's shape minus the reference's, ``d_g = Rest_g / n_rest -
    R_g / m`` per bin group (grouped as ``chi2_test`` groups the rest against the
    reference), measured without the lumisection, so under the null its projection
    ``T = sum_g d_g / p_g (O_g / n - p_g)`` (``p_g = R_g / m``) is independent of it, with
    mean 0 and variance ``(1 / n + 1 / m) sum_g d_g^2 / p_g`` (multinomial; ``sum_g d_g =
    0``), divided by the overdispersion ``scale``. A window alarm raised by lumisections
    before the last one gives that last one a score near 0 (it is clean); a lumisection
    inside a sustained change scores high, even when its own test alone is not
    significant.
    """
    o = np.asarray(one, dtype=np.float64)
    q = np.asarray(rest, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    n, nq, m = float(o.sum()), float(q.sum()), float(r.sum())
    if min(n, nq, m) < MIN_ENTRIES or not o.size == q.size == r.size:
        return None
    row_len = layout.row_len if layout is not None and o.size % layout.row_len == 0 else o.size
    gid = _groups((q + r) * min(nq, m) / (nq + m), row_len, min_expected)
    ok = gid >= 0
    if not ok.any():
        return None
    og = np.bincount(gid[ok], weights=o[ok])
    qg = np.bincount(gid[ok], weights=q[ok])
    rg = np.bincount(gid[ok], weights=r[ok])
    use = rg > 0
    if use.sum() < 2:
        return None
    p = rg[use] / m
    d = qg[use] / nq - p
    var = (1.0 / n + 1.0 / m) * float((d * d / p).sum()) * max(scale, 1.0)
    if var <= 0:
        return None
    t = float((d / p * (og[use] / n - p)).sum())
    return t / math.sqrt(var)


def _direction(o: np.ndarray, r: np.ndarray, sel: np.ndarray, layout: HistLayout,
               log_width: float) -> str:
    """The change in words within the bins ``sel``: a mean shift (log axes) or a
    fraction against the reference's."""
    n, m = o.sum(), r.sum()
    os_, rs = o[sel], r[sel]
    if log_width > 0 and os_.sum() > 0 and rs.sum() > 0:
        code = np.arange(sel.sum()) % layout.row_len
        inner = (code > 0) & (code < layout.row_len - 1)  # flows have no width
        if os_[inner].sum() > 0 and rs[inner].sum() > 0:
            d = (np.average(code[inner], weights=os_[inner])
                 - np.average(code[inner], weights=rs[inner]))
            factor = math.exp(d * log_width)
            if abs(factor - 1) >= 0.03:
                what = "pT" if layout.variable.startswith("pT") else (layout.variable or "MET")
                return f"{what} {factor:.2f}x the reference's"
    if layout.region_of_bin is not None and m > 0 and n > 0:
        fo, fr = os_.sum() / n, rs.sum() / m
        if fr > 0:
            return f"{fo / fr:.2f}x the reference's share of {layout.type} there"
    return ""


def _log_width(book: HistBook, name: str) -> float:
    """Width of a bin in log(value) for pT, MET and HT histograms (else 0)."""
    t, _, var = name.partition("/")
    o = book.object_axes(t)
    if o is not None and var in ("pt", "pt_region"):
        ax = o.pt
    elif name in ("met/pt", "ht"):
        ax = book.met if name == "met/pt" else book.ht
    else:
        return 0.0
    return math.log(ax.edges[-1] / ax.edges[0]) / ax.n if ax.log else 0.0


def sum_hists(hists: Sequence[LumiHists | None]) -> LumiHists | None:
    """The sum of ``hists`` (those None left out; None when all are)."""
    out: LumiHists | None = None
    for h in hists:
        if h is not None:
            out = h if out is None else out + h
    return out


def hist_scales(hists: Sequence[LumiHists]) -> dict[str, float]:
    """Per histogram, the overdispersion of the lumisections ``hists`` against each other:
    the median over lumisections of chi2 / its median under the null (each against the
    others, without those red by their own tests), where above 1. The objects of one event
    fill a type's histograms together (two jets of similar pT, back-to-back leptons), so
    their counts scatter more than multinomially by a few to twenty percent, which
    matters at a 1e-3 budget; the estimate's own error (a few percent with 20
    lumisections) errs on the safe side as often as not."""
    total = sum_hists(hists)
    if total is None or len(hists) < 5:
        return {}
    book = book_for(total.book)
    wanted = sorted(total.counts)
    layouts = {name: book.layout(name, total.counts[name].size) for name in wanted}

    def tests(excluded: np.ndarray) -> list[dict[str, Chi2]]:
        clean = sum_hists([h for h, x in zip(hists, excluded) if not x])
        assert clean is not None
        out: list[dict[str, Chi2]] = []
        for h, x in zip(hists, excluded):
            mine: dict[str, Chi2] = {}
            for name in wanted:
                obs = h.counts.get(name)
                if obs is None or obs.size != clean.counts[name].size:
                    continue
                c = chi2_test(obs, clean.counts[name] - (0 if x else obs), layouts[name])
                if c is not None:
                    mine[name] = c
            out.append(mine)
        return out

    excluded = np.zeros(len(hists), bool)
    got = tests(excluded)
    red = _red([[(n, 1, layouts[n], c) for n, c in t.items()] for t in got], excluded)
    if red.any():
        excluded = red
        got = tests(excluded)
    out: dict[str, float] = {}
    for name in wanted:
        cs = [t[name] for t, x in zip(got, excluded) if name in t and not x]
        if len(cs) < 5:
            continue
        ratios = [c.chi2 / float(special.chdtri(c.ndf, 0.5)) for c in cs]
        med = float(np.median(ratios))
        if med > 1:
            out[name] = med
    return out


def _broad(c: Chi2) -> bool:
    """The change is in at least half of the regions tested (not one place)."""
    return c.n_changed >= max(2, (c.n_regions + 1) // 2)


def _text(layout: HistLayout, c: Chi2, window: int, against: str) -> tuple[str, str]:
    what = f"{layout.type} {layout.variable}".strip()
    span = "" if window == 1 else f" over {window} LS"
    head = (f"{what}{span} differs from {against} (chi2/ndf = {c.chi2:.0f}/{c.ndf}, "
            f"{p_is(c.p)})")
    where = what
    if c.region >= 0 and layout.region_labels:
        cell = layout.region_labels[c.region]
        if _broad(c):
            where = f"{what}, all regions (most in {cell})"
            head += (f"; changed in {c.n_changed} of {c.n_regions} regions, most in {cell} "
                     f"({c.share:.0%})")
        else:
            where = f"{what} in {cell}"
            head += f"; most in {cell} ({c.share:.0%})"
    if c.detail:
        head += f": {c.detail}"
    return head, where


def _red(tests: Sequence[Sequence[tuple[str, int, HistLayout, Chi2]]],
         before: np.ndarray) -> np.ndarray:
    """Lumisections whose own tests reach red after Sidak over them (at most half of them:
    the most significant)."""
    p = np.asarray([sidak(min((c.p for *_, c in t), default=1.0), max(len(t), 1))
                    for t in tests])
    red = p < RED_P
    if red.sum() * 2 > red.size:
        keep = np.argsort(p, kind="stable")[: red.size // 2]
        red = np.zeros_like(red)
        red[keep] = True
    return red


Test = tuple[str, int, HistLayout, Chi2]


def run_spread(tests: Sequence[Sequence[Test]], skip: np.ndarray) -> dict[str, float]:
    """Per histogram, the spread of a run's tests ``tests`` (one window, per lumisection;
    lumisections ``skip`` left out): how much ``X2`` exceeds its null distribution, from the
    lower quartile of ``X2`` / chi2's lower quartile over the run's tests (robust: a fault
    in up to three quarters of them does not raise it), when at least ``MIN_SPREAD_TESTS``
    tests put it beyond 4 standard errors above 1, at most ``MAX_SPREAD`` (see the module
    docstring); histograms within statistics are absent."""
    ratios: dict[str, list[float]] = {}
    ndfs: dict[str, list[int]] = {}
    for t, x in zip(tests, skip):
        if x:
            continue
        for name, _, _, c in t:
            ratios.setdefault(name, []).append(c.chi2 / float(special.chdtri(c.ndf, 0.75)))
            ndfs.setdefault(name, []).append(c.ndf)
    out: dict[str, float] = {}
    for name, r in ratios.items():
        if len(r) < MIN_SPREAD_TESTS:
            continue
        q = float(np.quantile(r, 0.25))
        # standard error of a lower quartile of chi2 / ndf (normal approximation)
        se = 1.362 * math.sqrt(2.0 / max(float(np.median(ndfs[name])), 1.0) / len(r))
        if q > 1 + 4 * se:
            out[name] = min(q, MAX_SPREAD)
    return out


def dist_tests(hists: Sequence[LumiHists | None], reference: LumiHists | None = None,
               scales: Mapping[str, float] | None = None,
               windows: Sequence[int] = WINDOWS,
               names: Sequence[str] | None = None) -> list[list[tuple[float, Finding]]]:
    """Per lumisection (in the order of ``hists``: one run's, by lumisection), the
    uncorrected ``(p, Finding)`` of every histogram and window tested there.

    ``reference``: the reference run's histograms (None: leave-one-out); ``scales``:
    its overdispersion per histogram; ``names``: the histograms to test (default all).
    A window of ``w`` is tested at the lumisections with ``w`` lumisections up to them,
    unless one of the earlier ones is red by its own tests (then the window holds nothing
    that lumisection did not already say); those lumisections are also left out of the
    leave-one-out reference (found again until stable, at most half of the run) and of
    the spread (``run_spread``).
    """
    out: list[list[tuple[float, Finding]]] = [[] for _ in hists]
    have = [h for h in hists if h is not None]
    if not have:
        return out
    book_id = have[0].book
    try:
        book = book_for(book_id)
    except StreamError:
        return out
    total = sum_hists([h for h in have if h.book == book_id])
    if reference is not None and reference.book != book_id:
        reference = None  # another book: its histograms do not compare
    against = "the reference" if reference is not None else "the run's other lumisections"
    assert total is not None
    wanted = sorted(total.counts) if names is None else [x for x in names if x in total.counts]
    rows: dict[str, np.ndarray] = {}
    for name in wanted:
        size = total.counts[name].size
        zero = np.zeros(size, np.int64)
        rows[name] = np.stack([h.counts.get(name, zero) if h is not None and h.book == book_id
                               and h.counts.get(name, zero).size == size else zero
                               for h in hists])

    def run_tests(w: int, excluded: np.ndarray,
                  spread: Mapping[str, float] | None = None) -> list[list[Test]]:
        """Window ``w``'s tests at each lumisection (none over an excluded lumisection,
        except the one tested); the run's own reference without the excluded ones."""
        got: list[list[Test]] = [[] for _ in hists]
        for name in wanted:
            r = rows[name]
            size = r.shape[1]
            layout = book.layout(name, size)
            lw = _log_width(book, name)
            scale = max(float((scales or {}).get(name, 1.0)), 1.0) * float(
                (spread or {}).get(name, 1.0))
            csum = np.concatenate([np.zeros((1, size), np.int64), np.cumsum(r, axis=0)])
            clean_total = r[~excluded].sum(axis=0)
            ref_fixed = reference.counts.get(name) if reference is not None else None
            if reference is not None and (ref_fixed is None or ref_fixed.size != size):
                continue
            for i in range(w - 1, len(hists)):
                if w > 1 and excluded[i + 1 - w:i].any():
                    continue  # a window over a flagged lumisection says nothing new
                obs = csum[i + 1] - csum[i + 1 - w]
                if ref_fixed is not None:
                    ref = ref_fixed
                else:
                    ref = clean_total - (obs if not excluded[i] else 0) if w == 1 else \
                        clean_total - obs
                c = chi2_test(obs, ref, layout, scale, log_width=lw)
                if c is None:
                    continue
                if w > 1 and c.p < SUPPORT_GATE_P:
                    # the window changed: is it this lumisection, or only the ones before?
                    z = support_z(r[i], csum[i] - csum[i + 1 - w], ref, layout, scale)
                    if z is not None and z < SUPPORT_Z:
                        continue
                got[i].append((name, w, layout, c))
        return got

    # lumisections red by their own tests are left out of the leave-one-out reference
    # (repeated until stable), of the windows and of the spread
    excluded = np.zeros(len(hists), bool)
    single = run_tests(1, excluded)
    for _ in range(3):
        flagged = _red(single, excluded)
        if np.array_equal(flagged, excluded):
            break
        excluded = flagged
        if reference is not None:
            break
        single = run_tests(1, excluded)
    per_window: list[list[list[Test]]] = []
    for w in windows:
        got = single if w == 1 else run_tests(w, excluded)
        spread = run_spread(got, excluded)
        if spread:
            got = run_tests(w, excluded, spread)
        per_window.append(got)
    for i in range(len(hists)):
        tests = [t for got in per_window for t in got[i]]
        # a test without regions (pT, phi...) borrows the region of its type's most
        # significant regional test in the same window, when that one is significant too
        regional: dict[tuple[str, int], tuple[HistLayout, Chi2]] = {}
        has_regions: set[tuple[str, int]] = set()
        for _, w, layout, c in tests:
            if c.region >= 0:
                has_regions.add((layout.type, w))
            if c.region >= 0 and c.p < LOCATE_P:
                key = (layout.type, w)
                if key not in regional or c.p < regional[key][1].p:
                    regional[key] = (layout, c)
        for name, w, layout, c in tests:
            text, where = _text(layout, c, w, against)
            if c.region < 0 and (layout.type, w) in regional:
                lay, best = regional[(layout.type, w)]
                cell = lay.region_labels[best.region]
                if _broad(best):
                    where = f"{where}, all regions (most in {cell})"
                    text += f"; changed in all regions, most in {cell} ({lay.variable})"
                else:
                    where = f"{where} in {cell}"
                    text += f"; most in {cell} ({lay.variable})"
            elif c.region < 0 and (layout.type, w) in has_regions and c.p < LOCATE_P:
                text += "; no single region stands out"
            q = f"dist:{name}" + ("" if w == 1 else f"@{w}")
            out[i].append((c.p, Finding(q, "dist", c.chi2, float(c.ndf), c.n_obs, c.p, 1.0,
                                        "green", text, where)))
        # most significant first; p-values beyond double precision (0) by their excess
        out[i].sort(key=lambda t: (t[0], -_excess(t[1])))
    return out


def _excess(f: Finding) -> float:
    """A test's statistic in standard deviations above its degrees of freedom (``X2`` in
    ``observed``, ``ndf`` in ``expected``): orders tests whose p-values underflow."""
    return (f.observed - f.expected) / math.sqrt(2.0 * max(f.expected, 1.0))


def family_correct(tests: Sequence[tuple[float, Finding]]) -> list[Finding]:
    """One lumisection's distribution tests corrected together: Sidak over them, amber
    below ``DIST_AMBER_P``, red below ``RED_P`` (the module docstring's budget)."""
    m = max(len(tests), 1)
    out = []
    for p, f in tests:
        pc = sidak(p, m)
        out.append(Finding(f.quantity, f.kind, f.observed, f.expected, f.n, f.p_value, pc,
                           level_of(pc, DIST_AMBER_P), f.text,  # type: ignore[arg-type]
                           f.where))
    return out


def ml_mean_segment(z: np.ndarray) -> tuple[int, int]:
    """The segment ``a..b`` (inclusive) of ``z`` with the largest Gaussian mean-shift
    likelihood ratio ``(sum z)^2 / length`` among those with a positive sum (the whole
    of ``z`` when none is positive); exact up to ``_ML_EXACT`` values, else the best start
    for the whole, then the best end for that start."""
    z = np.asarray(z, dtype=np.float64)
    if z.size <= 1:
        return 0, max(z.size - 1, 0)
    c = np.concatenate([[0.0], np.cumsum(z)])
    if z.size <= _ML_EXACT:
        s = c[None, 1:] - c[:-1, None]  # s[a, b] = sum of z[a..b]
        length = np.arange(z.size)[None, :] - np.arange(z.size)[:, None] + 1
        score = np.where((length > 0) & (s > 0), s * s / np.maximum(length, 1), -1.0)
        if score.max() <= 0:
            return 0, z.size - 1
        best = int(np.argmax(score))
        return best // z.size, best % z.size
    tail = (c[-1] - c[:-1]) / np.sqrt(np.arange(z.size, 0, -1))
    start = int(np.argmax(tail))
    head = (c[start + 1:] - c[start]) / np.sqrt(np.arange(1, z.size - start + 1))
    return start, start + int(np.argmax(head))


#: ``ml_mean_segment`` is exact (quadratic) up to this many values
_ML_EXACT = 600


def dist_trends(tests: Sequence[Sequence[tuple[float, Finding]]],
                lumis: Sequence[int] | None = None) -> list[list[Finding]]:
    """Per lumisection, the trend findings of the distribution tests ``tests`` (per
    lumisection, uncorrected; only single-lumisection tests are used): per histogram,
    CUSUMs of ``gaussian_llr(z_from_p(p), d)`` for each ``d`` of ``TREND_SHIFTS``, restarted
    after each alarm (``alarm_segments``); a height ``S`` over the ``N`` lumisections
    tested has ``p <= N exp(-S)``, Sidak over every CUSUM of the run, amber below
    ``TREND_AMBER_P``; the finding (quantity ``trend:dist:<histogram>``) covers its
    alarm's maximum-likelihood segment of lumisections."""
    lumis = list(lumis) if lumis is not None else list(range(1, len(tests) + 1))
    series: dict[str, list[tuple[int, float, Finding]]] = {}
    for i, t in enumerate(tests):
        for p, f in t:
            if "@" not in f.quantity and not f.quantity.startswith("trend:"):
                series.setdefault(f.quantity, []).append((i, p, f))
    designs = [(q, v) for q, v in series.items() if len(v) >= MIN_TREND_LUMIS]
    n_cusums = len(designs) * len(TREND_SHIFTS)
    best: dict[tuple[int, str], Finding] = {}
    for q, v in designs:
        idx = np.asarray([i for i, _, _ in v])
        z = z_from_p([p for _, p, _ in v])
        # the height at which a CUSUM's p (Ville, Sidak over the run's CUSUMs) is amber
        p_one = -math.expm1(math.log1p(-TREND_AMBER_P) / max(n_cusums, 1))
        alarm = math.log(idx.size / p_one)
        for d in TREND_SHIFTS:
            for first, peak, height in alarm_segments(gaussian_llr(z, d), alarm):
                p = trend_p(height, idx.size)
                pc = sidak(p, n_cusums)
                lv = level_of(pc, TREND_AMBER_P)
                if lv == "green":
                    continue
                # the lumisections: the excursion's maximum-likelihood segment, so clean
                # lumisections that happened to start it or to keep it going after the
                # change ended are not pulled in
                a, b = ml_mean_segment(z[first:peak + 1])
                first, peak = first + a, first + b
                seg = v[first:peak + 1]
                strongest = min(seg, key=lambda x: x[1])[2]
                la, lb = lumis[int(idx[first])], lumis[int(idx[peak])]
                span = f"LS {la}" if la == lb else f"LS {la}-{lb}"
                what = strongest.text.split(" differs from ")[0]
                text = (f"{what} changed over {span} (CUSUM of the per-lumisection chi2, "
                        f"{p_is(pc)}); strongest at LS "
                        f"{lumis[min(seg, key=lambda x: x[1])[0]]}: {strongest.text}")
                f = Finding(f"trend:{q}", "dist", float(height), float(len(seg)),
                            int(sum(x[2].n for x in seg)), p, pc, lv,  # type: ignore[arg-type]
                            text, strongest.where)
                for j in range(first, peak + 1):
                    key = (int(idx[j]), f.quantity)
                    if key not in best or best[key].p_corrected > pc:
                        best[key] = f
    out: list[list[Finding]] = [[] for _ in tests]
    for (i, _), f in best.items():
        out[i].append(f)
    return out


def dist_findings(hists: Sequence[LumiHists | None], reference: LumiHists | None = None,
                  scales: Mapping[str, float] | None = None,
                  windows: Sequence[int] = WINDOWS,
                  names: Sequence[str] | None = None,
                  lumis: Sequence[int] | None = None) -> list[list[Finding]]:
    """Per lumisection (in the order of ``hists``), every distribution finding with its
    corrected p-value and level under the family's budget (module docstring): the tests
    of ``dist_tests`` (``family_correct``) and the trends (``dist_trends``; ``lumis``:
    the lumisection numbers, for their words)."""
    tests = dist_tests(hists, reference, scales, windows, names)
    trends = dist_trends(tests, lumis)
    return [family_correct(t) + tr for t, tr in zip(tests, trends)]
