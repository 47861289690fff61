"""Distribution checks: each lumisection's histograms against the reference, localised.

Owns the tests of the per-lumisection histograms (``LumiSummary.hists``,
``detectors.event_histograms``) that the run-status engine (``alerts.run_status``) adds
to its per-lumisection quantities as kind ``"dist"``:

**Test.** A two-sample Pearson chi2 (``chi2_test``) of the lumisection's histogram
(or of the sum over a sliding window of ``w`` lumisections ending there) against the
reference histogram: the reference run's (``Reference.hists``), or, without one, the
sum of the run's other lumisections (leave-one-out) without those red by their own
tests. It tests the *shape* (both
normalised; the counts themselves are the count quantities' job) with both samples'
statistical uncertainty: ``X2 = sum_g (sqrt(R/N) O_g - sqrt(N/R) R_g)^2 / (O_g + R_g)``
over bin groups ``g``, ``ndf`` = groups - 1. For histograms resolved by detector region
(``<type>/pt_region``, ``<type>/etaphi``) a change confined to one region would be
diluted among all regions' degrees of freedom, so each region is tested too (its groups'
contributions, chi2 with one degree of freedom per group) and the histogram's p-value is
``sidak(min(p_global, sidak(min_r p_r, regions)), 2)``. Adjacent bins are merged within a row (a
detector region's pT bins, an eta row of the eta-phi map) until each group expects at
least ``MIN_EXPECTED`` entries in the smaller sample; rows too sparse for one group are
pooled into one group. If the reference run's own lumisections scatter more than
multinomially, ``X2`` is divided by that overdispersion (``hist_scale``, measured on the
reference's lumisections). p-values are chi2 tails, not corrected here: the engine
applies its Sidak rule over all quantities of the lumisection (these included).

**Localisation.** Each group's contribution to ``X2`` is assigned to the detector region
(eta-phi cell) of its bins; the finding names the object type, the variable and the
region contributing most, with the direction (pT / MET / HT: the mean shift as a
factor; occupancy: the cell's fraction against the reference's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from hotline.alerts.lumi_status import Finding
from hotline.alerts.statistics import RED_P, p_is, sidak
from hotline.detectors.event_histograms import HistBook, HistLayout, LumiHists, book_for
from hotline.errors import StreamError

__all__ = ["MIN_EXPECTED", "MIN_ENTRIES", "WINDOWS", "Chi2", "chi2_test", "dist_findings",
           "hist_scales", "sum_hists"]

#: minimum expected entries per bin group in the smaller sample
MIN_EXPECTED = 5.0
#: a histogram is tested only with at least this many entries on each side
MIN_ENTRIES = 20
#: a regional test lends its region to its type's other findings below this p-value
LOCATE_P = 0.01
#: sliding windows tested: 1 (the lumisection alone) and 5 lumisections ending there
WINDOWS = (1, 5)


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


def _groups(e: np.ndarray, row_len: int, min_expected: float) -> np.ndarray:
    """Group id per bin (-1: empty in both samples); see the module docstring."""
    size = e.size
    rows = size // row_len
    er = e.reshape(rows, row_len)
    cex = np.cumsum(er, axis=1) - er
    g = np.floor(cex / min_expected).astype(np.int64)
    # a group below the minimum joins its predecessor in the row (repeat: chains)
    base = np.arange(rows)[:, None] * (row_len + 1)
    for _ in range(row_len):
        tot = np.bincount((base + g).ravel(), weights=er.ravel(),
                          minlength=rows * (row_len + 1))
        small = (tot[base + g] < min_expected) & (g > 0)
        if not small.any():
            break
        # the highest small group of each row joins its predecessor (one per row per pass,
        # so chains of small groups merge in order)
        top = np.where(small, g, -1).max(axis=1, keepdims=True)
        g = np.where((g == top) & small, g - 1, g)
    row_tot = er.sum(axis=1)
    gid = np.arange(rows)[:, None] * (row_len + 1) + g + 1
    gid = np.where((row_tot < min_expected)[:, None], 0, gid)  # sparse rows: one pooled group
    gid = gid.ravel()
    gid[e <= 0] = -1
    return gid


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
    uniq, inv = np.unique(gid[ok], return_inverse=True)
    if uniq.size < 2:
        return None
    og = np.bincount(inv, weights=o[ok])
    rg = np.bincount(inv, weights=r[ok])
    a, b = math.sqrt(m / n), math.sqrt(n / m)
    contrib = (a * og - b * rg) ** 2 / np.maximum(og + rg, 1e-300) / max(scale, 1.0)
    x2 = float(contrib.sum())
    ndf = int(uniq.size - 1)
    p = float(stats.chi2.sf(x2, ndf))
    region, share, detail = -1, 0.0, ""
    if layout is not None and layout.region_of_bin is not None:
        # each group's contribution goes to the region of its fullest bin
        bins = np.flatnonzero(ok)
        fullest = np.full(uniq.size, -1, np.int64)
        weight = (o + r)[bins]
        order = np.lexsort((weight, inv))  # within each group, the fullest bin last
        fullest[inv[order]] = bins[order]
        reg = layout.region_of_bin[fullest]
        n_reg = len(layout.region_labels)
        per = np.bincount(reg, weights=contrib, minlength=n_reg)
        dof = np.bincount(reg, minlength=n_reg)
        tested = dof > 0
        p_reg = np.ones(n_reg)
        p_reg[tested] = stats.chi2.sf(per[tested], dof[tested])
        region = int(np.argmin(np.where(tested, p_reg, 2.0)))
        share = float(per[region] / x2) if x2 > 0 else 0.0
        # the region scan: the most significant region, Sidak over the regions tested,
        # then the better of scan and global test, Sidak over the two
        p_scan = sidak(float(p_reg[region]), int(tested.sum()))
        p = sidak(min(p, p_scan), 2)
        in_r = layout.region_of_bin == region
        detail = _direction(o, r, in_r, layout, log_width)
    elif layout is not None:
        detail = _direction(o, r, np.ones(o.size, bool), layout, log_width)
    return Chi2(x2, ndf, p, int(n), int(m), region, share, detail)


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
    others, without those red by their own tests), kept above 1 only when beyond 4
    standard errors (else 1)."""
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
        ratios = [c.chi2 / float(stats.chi2.median(c.ndf)) for c in cs]
        med = float(np.median(ratios))
        se = 1.2533 * math.sqrt(2.0 / max(float(np.median([c.ndf for c in cs])), 1.0)
                                / len(ratios))
        if med > 1 + 4 * se:
            out[name] = med
    return out


def _text(layout: HistLayout, c: Chi2, window: int, against: str) -> tuple[str, str]:
    what = f"{layout.type} {layout.variable}".strip()
    span = "" if window == 1 else f" over {window} LS"
    head = (f"{what}{span} differs from {against} (chi2/ndf = {c.chi2:.0f}/{c.ndf}, "
            f"{p_is(c.p)})")
    where = what
    if c.region >= 0 and layout.region_labels:
        where = f"{what} in {layout.region_labels[c.region]}"
        head += f"; most in {layout.region_labels[c.region]} ({c.share:.0%})"
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


def dist_findings(hists: Sequence[LumiHists | None], reference: LumiHists | None = None,
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
    leave-one-out reference (found again until stable, at most half of the run).
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

    def run_tests(w: int, excluded: np.ndarray) -> list[list[tuple[str, int, HistLayout, Chi2]]]:
        """Window ``w``'s tests at each lumisection (none over an excluded lumisection,
        except the one tested); the run's own reference without the excluded ones."""
        got: list[list[tuple[str, int, HistLayout, Chi2]]] = [[] for _ in hists]
        for name in wanted:
            r = rows[name]
            size = r.shape[1]
            layout = book.layout(name, size)
            lw = _log_width(book, name)
            scale = float((scales or {}).get(name, 1.0))
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
                if c is not None:
                    got[i].append((name, w, layout, c))
        return got

    # lumisections red by their own tests are left out of the leave-one-out reference
    # (repeated until stable) and of the windows
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
    raw = [list(x) for x in single] if 1 in windows else [[] for _ in hists]
    for w in windows:
        if w > 1:
            for i, tests in enumerate(run_tests(w, excluded)):
                raw[i].extend(tests)
    for i, tests in enumerate(raw):
        # a test without regions (pT, phi...) borrows the region of its type's most
        # significant regional test in the same window, when that one is significant too
        regional: dict[tuple[str, int], tuple[HistLayout, Chi2]] = {}
        for _, w, layout, c in tests:
            if c.region >= 0 and c.p < LOCATE_P:
                key = (layout.type, w)
                if key not in regional or c.p < regional[key][1].p:
                    regional[key] = (layout, c)
        for name, w, layout, c in tests:
            text, where = _text(layout, c, w, against)
            if c.region < 0 and (layout.type, w) in regional:
                lay, best = regional[(layout.type, w)]
                cell = lay.region_labels[best.region]
                where = f"{where} in {cell}"
                text += f"; most in {cell} ({lay.variable})"
            q = f"dist:{name}" + ("" if w == 1 else f"@{w}")
            out[i].append((c.p, Finding(q, "dist", c.chi2, float(c.ndf), c.n_obs, c.p, 1.0,
                                        "green", text, where)))
    return out
