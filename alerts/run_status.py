"""The run-status engine: green / amber / red per lumisection and per run, with reasons.

Owns ``assess_lumis`` (pure: summaries, AE thresholds, reference, DQM and other alerts ->
``RunStatus``; the dashboard calls it live) and ``assess_run`` (reads a run's summaries,
DQM alerts and, for the lumisections that are not green, its AE and classic alerts from
the alert store; ``hotline status``, ``hotline certify``, the run report and ``hotline
demo`` call it). The statistics are ``alerts.statistics`` (``METHOD`` says them in plain
words); the expectations ``alerts.reference``; the vocabulary ``alerts.lumi_status``.

Quantities tested per lumisection: every AE threshold of the model card (the events
above it, counted exactly: the AE rule's own count at its p-value, else the summaries'
score bins above the threshold against the card's survival function at that bin edge;
without a survival function a conservative bracket), every classic rule, the quarantined
events, the events per lumisection, and per DQM subsystem the alert's map p-value. A
finding's reason points at *where* when the lumisection's alerts allow it: the AE
alerts' top object type and the place its objects cluster ("jets near eta 1.8, phi
2.6"), the classic alerts' objects, the DQM alerts' flagged hardware units; never a run
card. Consecutive non-green lumisections merge into ``LumiRange``s whose reason sums the
counts over the range. The run's level is its worst lumisection's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hotline.alerts.distribution_checks import (
    DIST_ALPHA,
    DIST_AMBER_P,
    TREND_AMBER_P,
    dist_findings,
)
from hotline.alerts.lumi_status import Finding, Level, LumiRange, LumiStatus, RunStatus
from hotline.alerts.records import AlertRecord, LumiSummary, score_bin_edges
from hotline.alerts.reference import (
    AEModel,
    Reference,
    ThresholdLike,
    ae_rule_p,
    current_reference,
    dqm_alerts,
    load_ae_model,
    run_source,
)
from hotline.alerts.statistics import (
    AMBER_P,
    CUSUM_RATIOS,
    RED_P,
    ExpectedRate,
    binomial_tail,
    count_tail,
    cusum,
    excursions,
    level_of,
    overdispersion,
    p_is,
    poisson_llr,
    segment,
    sidak,
    sigma_from_p,
    trend_p,
)
from hotline.errors import HotlineError

__all__ = ["METHOD", "assess_lumis", "assess_run", "locate"]

METHOD = (
    "Each lumisection's counts are tested exactly: events above each AE threshold against "
    "its calibrated p-value (binomial), classic-rule and quarantined events against the "
    "reference run's fractions (beta-binomial: the reference's finite statistics and its "
    "lumisection-to-lumisection spread included), events per lumisection against the "
    "reference's (Poisson, or negative binomial when they scatter more), DQM alerts by "
    "their map p-values (scaled up if the reference run alerts more often than "
    "calibrated). Without a reference run, a quantity's expectation is the average of the "
    "run's other lumisections (leave-one-out, a second pass without the lumisections "
    "flagged in the first). Two-sided tests double the smaller tail. Within a lumisection "
    f"the p-values are Sidak-corrected for the number of quantities tested; amber below "
    f"{AMBER_P:g} (at most ~1 clean lumisection in 100), red below {RED_P:.2g} "
    "(one-sided 5 sigma). Sustained changes and slow drifts are caught across "
    "lumisections by CUSUMs of the Poisson likelihood ratio (rate x1.5 and x3 up, /1.5 "
    "down) per quantity expecting at least 0.25 counts per lumisection; by Ville's "
    "inequality a CUSUM peak S over N lumisections has "
    "p <= N exp(-S), Sidak-corrected over all CUSUMs of the run with the same cuts; the "
    "lumisections of a significant excursion are its maximum-likelihood segment. Range "
    "reasons sum the counts over the range (descriptive p-value). Input-rate findings are "
    "at most amber, and the last lumisection (possibly partial) is not tested for a "
    "deficit of events. Each lumisection's histograms (pT, eta, phi, multiplicity per "
    "object type and region, MET, HT, AE score shares), alone and summed over the 5 "
    "lumisections up to it, are compared with the reference run's (without one: with the "
    "run's other lumisections) by a two-sample test of their shapes (both samples' "
    "statistics: per bin group the binomial likelihood ratio of its share), bins merged "
    "to at least 5 expected entries, region-resolved histograms also region by region "
    "(Sidak over the regions), divided by the reference's "
    "lumisection-to-lumisection overdispersion and by the run's spread against its "
    "reference (lower quartile of chi2 over its lumisections, at most 3x). These "
    "distribution tests "
    f"have their own budget of {DIST_ALPHA:g} false alarms per clean lumisection: Sidak "
    f"over the lumisection's distribution tests, amber below {DIST_AMBER_P:g}; trends "
    "across lumisections by CUSUMs of each histogram's per-lumisection normal score "
    f"(Ville's bound, Sidak over the run's CUSUMs, amber below {TREND_AMBER_P:g} per run); "
    "red at the same 5 sigma. A distribution finding names the object type, the variable "
    "and the region (eta-phi cell) contributing most."
)

#: a CUSUM watches a quantity only if it expects at least this many counts per lumisection
MIN_TREND_COUNT = 0.25

_OBJ_TYPES = {"met": "MET", "e": "electrons", "mu": "muons", "j": "jets", "g": "photons",
              "pho": "photons", "gamma": "photons", "tau": "taus"}


def _obj_type(label: str) -> str:
    prefix = label.rstrip("0123456789").lower()
    return _OBJ_TYPES.get(prefix, prefix)


def _p_label(p: float) -> str:
    return f"p={p:.0e}".replace("e-0", "e-")


def _ratio(x: float) -> str:
    if not math.isfinite(x):
        return "inf"
    return f"{x:.0f}" if x >= 10 else (f"{x:.1f}" if x >= 0.1 else f"{x:.2f}")


# ------------------------------------------------------------------ localisation


def locate(alerts: Sequence[AlertRecord], cell: float = 0.4) -> str:
    """Where ``alerts`` point, in plain words (``"jets near eta 1.8, phi 2.6"``), or ``""``.

    AE alerts vote with their top object type (``explained_by`` / ``top_type``) and the
    objects of that type; classic alerts with all their objects. Each alert votes once per
    (type, eta-phi cell of ``cell`` x ``cell``); a cell holding objects of at least 3 and
    of 30 % of the alerts is a place (the median eta, phi of its objects), else only the
    type the alerts share.
    """
    votes: Counter[tuple[str, int, int]] = Counter()
    pos: dict[tuple[str, int, int], list[tuple[float, float]]] = {}
    types: Counter[str] = Counter()
    n = 0
    for a in alerts:
        payload = a.payload or {}
        objects = payload.get("objects") or []
        want: str | None = None
        if a.kind == "ae":
            want = payload.get("explained_by") or payload.get("top_type")
            if want is None:
                tw = (payload.get("contributions") or {}).get("types") or {}
                want = max(tw, key=lambda t: tw[t]) if tw else None
            if want is None:
                continue
            types[str(want)] += 1
        n += 1
        seen = set()
        for obj in objects:
            try:
                label, _pt, eta, phi = obj[0], float(obj[1]), float(obj[2]), float(obj[3])
            except (TypeError, ValueError, IndexError):
                continue
            t = _obj_type(str(label))
            if t == "MET" or (want is not None and t != want):
                continue
            key = (t, int(math.floor(eta / cell)), int(math.floor(phi / cell)))
            pos.setdefault(key, []).append((eta, phi))
            if key not in seen:
                seen.add(key)
                votes[key] += 1
            if want is None:
                types[t] += 0  # known, not a vote
    if not n:
        return ""
    if votes:
        key, count = votes.most_common(1)[0]
        if count >= 3 and count >= 0.3 * n:
            eta, phi = np.median(np.asarray(pos[key]), axis=0)
            return f"{key[0]} near eta {eta:.1f}, phi {phi:.1f}"
    if types:
        t, c = types.most_common(1)[0]
        if c >= 0.5 * sum(types.values()):
            return f"{t} (no common place)"
    return ""


def _dqm_where(alerts: Sequence[AlertRecord]) -> str:
    """The DQM alerts' flagged hardware units, most frequent first, per subsystem."""
    per: dict[str, Counter[str]] = {}
    for a in alerts:
        sub = str(a.payload.get("subsystem") or a.rule.removeprefix("dqm_"))
        units = a.payload.get("top_units") or []
        c = per.setdefault(sub, Counter())
        for u in units[:2]:
            if isinstance(u, dict) and u.get("unit"):
                level, unit = str(u.get("level", "")), str(u["unit"])
                c[unit if unit.startswith(level) else f"{level} {unit}".strip()] += 1
        if not units and a.payload.get("summary"):
            c[str(a.payload["summary"])] += 1
    parts = []
    for sub, c in sorted(per.items()):
        top = ", ".join(u for u, _ in c.most_common(2))
        parts.append(f"{sub} {top}" if top else sub)
    return "; ".join(parts)


# ------------------------------------------------------------------ series of counts


@dataclass
class _Series:
    """One count quantity over the run's lumisections (index = position in ``lumis``)."""

    quantity: str
    kind: str
    label: str
    k_up: np.ndarray
    k_down: np.ndarray
    n: np.ndarray
    tested: np.ndarray  #: bool per lumisection
    rates: list[ExpectedRate | None] = field(default_factory=list)
    sides: str = "two"
    expect: str = "expected"
    alert_rules: tuple[str, ...] = ()
    alert_kind: str = ""
    p: np.ndarray = field(default_factory=lambda: np.ones(0))
    direction: list[str] = field(default_factory=list)

    def mu(self, i: int) -> float:
        r = self.rates[i]
        return 0.0 if r is None else r.rate * float(self.n[i])


def _hist_counts(hist: Sequence[int], threshold: float,
                 edges: np.ndarray) -> tuple[int, int, float | None]:
    """(events in bins fully above ``threshold``, events in bins reaching above it, the
    lowest bin edge at or above it) of a summary's score histogram."""
    h = np.asarray(hist, dtype=np.int64)
    lo = np.concatenate([[0.0], edges])[: h.size]
    hi = np.concatenate([edges, [np.inf]])[: h.size]
    full = lo >= threshold
    k_hi = int(h[full].sum())
    k_lo = int(h[hi > threshold].sum())
    edge = float(lo[full].min()) if full.any() else None
    return k_hi, k_lo, edge


def _outlier(s: _Series, i: int) -> bool:
    """Lumisection ``i`` of ``s`` is off the run's median fraction (an outlier to leave out
    of the others' expectation, not a lumisection flagged only because others are)."""
    frac = s.k_up[s.tested] / np.maximum(s.n[s.tested], 1)
    if not frac.size or s.n[i] <= 0:
        return False
    med = float(np.median(frac))
    mine = float(s.k_up[i] / s.n[i])
    return mine > med if s.direction[i] == "high" else mine < med


def _loo_rates(k: np.ndarray, n: np.ndarray, tested: np.ndarray,
               exclude: np.ndarray) -> list[ExpectedRate | None]:
    use = tested & ~exclude
    kk, nn = k[use], n[use]
    phi = overdispersion(kk, nn)
    ktot, ntot = float(kk.sum()), float(nn.sum())
    n_lumi = float(nn.mean()) if nn.size else 0.0
    out: list[ExpectedRate | None] = []
    for i in range(len(k)):
        ki = float(k[i]) if use[i] else 0.0
        ni = float(n[i]) if use[i] else 0.0
        if ntot - ni <= 0:
            out.append(None)
        else:
            out.append(ExpectedRate.measured(ktot - ki, ntot - ni, phi, n_lumi))
    return out


def _test_series(s: _Series) -> None:
    """Per-lumisection p-values (and directions) of a series."""
    m = len(s.n)
    s.p = np.ones(m)
    s.direction = ["high"] * m
    for i in range(m):
        r = s.rates[i]
        if not s.tested[i] or r is None or s.n[i] <= 0:
            continue
        n = int(s.n[i])
        up = r.tail(s.k_up[i], n, True)
        if s.sides == "high":
            s.p[i], s.direction[i] = up, "high"
            continue
        down = r.tail(s.k_down[i], n, False)
        s.p[i] = min(1.0, 2 * min(up, down))
        s.direction[i] = "high" if up <= down else "low"


def _finding_text(s: _Series, k: float, mu: float, p: float, direction: str) -> str:
    ratio = k / mu if mu > 0 else math.inf
    if s.kind == "quarantine":
        head = f"{int(k)} quarantined events, {_ratio(ratio)}x {s.expect}"
    else:
        head = f"{s.label} is {_ratio(ratio)}x {s.expect}"
    if p >= 0.5:
        return head
    sig = f", {sigma_from_p(p):.1f} sigma" if p > 1e-300 else ""
    return f"{head} ({p_is(p)}{sig})"


# ------------------------------------------------------------------ the engine


@dataclass
class _Assessment:
    source: str
    run: int
    sums: list[LumiSummary]
    series: list[_Series]
    per_lumi: list[list[Finding]]
    dqm: dict[int, list[AlertRecord]]
    reference_info: dict[str, Any]


def assess_lumis(summaries: Sequence[LumiSummary], thresholds: Sequence[ThresholdLike] = (),
                 reference: Reference | None = None,
                 dqm: Mapping[int, Sequence[AlertRecord]] | None = None,
                 alerts: Mapping[int, Sequence[AlertRecord]] | None = None, *,
                 survival: Callable[[np.ndarray], np.ndarray] | None = None,
                 model: AEModel | None = None, last_partial: bool = True) -> RunStatus:
    """The status of one run's lumisections (pure; see the module docstring).

    ``summaries``: one run's ``LumiSummary`` list; ``thresholds``: the AE thresholds
    (``p``, ``threshold``; default: ``model``'s); ``survival``: the model card's background
    survival function (default: ``model``'s); ``reference``: expectations of the other
    quantities (None: leave-one-out); ``dqm``: DQM alerts per lumisection; ``alerts``: AE
    and classic alerts per lumisection, for the reasons' localisation; ``last_partial``:
    the last lumisection may still be filling (no event-deficit test there).
    """
    a = _assess(summaries, thresholds, reference, dqm, survival, model, last_partial)
    return _finish(a, alerts or {})


def _assess(summaries: Sequence[LumiSummary], thresholds: Sequence[ThresholdLike],
            reference: Reference | None, dqm: Mapping[int, Sequence[AlertRecord]] | None,
            survival: Callable[[np.ndarray], np.ndarray] | None, model: AEModel | None,
            last_partial: bool) -> _Assessment:
    sums = sorted((s for s in summaries), key=lambda s: s.lumi)
    source = sums[0].source if sums else ""
    run = sums[0].run if sums else 0
    if model is not None:
        thresholds = thresholds or model.thresholds
        survival = survival if survival is not None else model.survival
    ref_info: dict[str, Any] = {}
    if reference is not None:
        ref_info["reference"] = reference.provenance()
    else:
        ref_info["reference"] = None
    if model is not None:
        ref_info["model"] = model.provenance()
    dqm_by = {int(ls): list(v) for ls, v in (dqm or {}).items()}
    if not sums:
        return _Assessment(source, run, [], [], [], dqm_by, ref_info)
    series = _make_series(sums, thresholds, reference, survival)
    ref_hists = reference.lumi_hists() if reference is not None else None
    dist = dist_findings([s.hists for s in sums], ref_hists,
                         reference.hist_scale if reference is not None else None,
                         lumis=[s.lumi for s in sums])
    loo = [s for s in series if not s.rates]
    for s in series:
        if s.rates:  # AE thresholds and reference: fixed expectations
            _test_series(s)
    # leave-one-out quantities: twice, the second time without the lumisections the first
    # pass flagged for that quantity (per lumisection or by its CUSUM)
    exclude = {s.quantity: np.zeros(len(sums), dtype=bool) for s in loo}
    per_lumi: list[list[Finding]] = []
    for _ in range(2 if loo else 1):
        for s in loo:
            s.rates = _loo_rates(s.k_up, s.n, s.tested, exclude[s.quantity])
            _test_series(s)
        per_lumi = _lumi_findings(sums, series, reference, dqm_by, last_partial, dist)
        _trend_findings(sums, series, per_lumi)
        by_q = {s.quantity: s for s in loo}
        for i, fs in enumerate(per_lumi):
            for f in fs:
                q = f.quantity.removeprefix("trend:")
                if q in exclude and f.level in ("amber", "red") and _outlier(by_q[q], i):
                    exclude[q][i] = True
        for q, ex in exclude.items():  # never more than half of a quantity's lumisections
            if ex.sum() * 2 > by_q[q].tested.sum():
                ex[:] = False
    return _Assessment(source, run, list(sums), series, per_lumi, dqm_by, ref_info)


def _make_series(sums: list[LumiSummary], thresholds: Sequence[ThresholdLike],
                 reference: Reference | None,
                 survival: Callable[[np.ndarray], np.ndarray] | None) -> list[_Series]:
    m = len(sums)
    edges = score_bin_edges()
    good = np.asarray([max(s.n_events - s.n_bad, 0) for s in sums], dtype=float)
    out: list[_Series] = []
    score_rules = sorted({r for s in sums for r in s.score_hist})
    for rule in score_rules:
        parsed = ae_rule_p(rule)
        ths: list[tuple[float, float | None]] = [(float(t.p), float(t.threshold))
                                                 for t in thresholds]
        if parsed and not any(math.isclose(p, parsed[1], rel_tol=1e-6) for p, _ in ths):
            ths.append((parsed[1], None))
        multi = len(score_rules) > 1
        for p, thr in sorted(ths, key=lambda x: -x[0]):
            k_up = np.zeros(m)
            k_down = np.zeros(m)
            n = np.zeros(m)
            tested = np.zeros(m, dtype=bool)
            rates: list[ExpectedRate | None] = [None] * m
            exact = parsed is not None and math.isclose(p, parsed[1], rel_tol=1e-6)
            for i, s in enumerate(sums):
                if rule in s.unavailable or rule not in s.score_hist:
                    continue
                if exact and rule in s.rule_counts:
                    k_up[i] = k_down[i] = s.rule_counts[rule]
                    n[i] = good[i]
                    rates[i] = ExpectedRate(p)
                elif thr is not None:
                    k_hi, k_lo, edge = _hist_counts(s.score_hist[rule], thr, edges)
                    n[i] = float(np.sum(s.score_hist[rule]))
                    if survival is not None and edge is not None:
                        p_edge = float(np.asarray(survival(np.asarray([edge])))[0])
                        k_up[i] = k_down[i] = k_hi
                        rates[i] = ExpectedRate(min(max(p_edge, 1e-300), 1.0))
                    else:  # conservative bracket: excess from full bins, deficit from reaching
                        k_up[i], k_down[i] = k_hi, k_lo
                        rates[i] = ExpectedRate(p)
                else:
                    continue
                tested[i] = n[i] > 0
            if not tested.any():
                continue
            model = parsed[0] if parsed else rule
            label = f"AE rate at {_p_label(p)}" + (f" ({model})" if multi else "")
            out.append(_Series(f"{model}_p{p:.0e}", "ae", label, k_up, k_down, n, tested,
                               rates, "two", "expected", (rule,), "ae"))
    # classic rules
    for rule in sorted({r for s in sums for r in s.rule_counts} - set(score_rules)):
        k = np.asarray([float(s.rule_counts.get(rule, 0)) for s in sums])
        tested = np.asarray([rule in s.rule_counts and rule not in s.unavailable and g > 0
                             for s, g in zip(sums, good)])
        rate = reference.rule_rate(rule) if reference is not None else None
        expect = "the reference" if rate is not None else "the run's average (leave-one-out)"
        out.append(_Series(f"rule:{rule}", "rule", f"{rule} rate", k, k.copy(), good.copy(),
                           tested, [rate] * m if rate is not None else [], "two", expect,
                           (rule,), "classic"))
    # quarantined events
    ev = np.asarray([float(s.n_events) for s in sums])
    bad = np.asarray([float(s.n_bad) for s in sums])
    qrate = reference.quarantine_rate() if reference is not None else None
    out.append(_Series("quarantine", "quarantine", "quarantined events", bad, bad.copy(), ev,
                       ev > 0, [qrate] * m if qrate is not None else [], "high",
                       "the reference" if qrate is not None
                       else "the run's average (leave-one-out)"))
    return out


def _input_findings(sums: list[LumiSummary], reference: Reference | None,
                    last_partial: bool) -> list[tuple[float, str, float, float] | None]:
    """Per lumisection: (p, direction, observed, expected) of the events per lumisection."""
    ev = np.asarray([float(s.n_events) for s in sums])
    ref = reference.input_counts() if reference is not None else None
    out: list[tuple[float, str, float, float] | None] = []
    for i in range(len(sums)):
        if ref is not None:
            mean, var = ref
        else:
            others = np.delete(ev, i)
            if others.size < 2:
                out.append(None)
                continue
            mean, var = float(others.mean()), float(others.var(ddof=1))
        up = count_tail(ev[i], mean, var, True)
        down = count_tail(ev[i], mean, var, False)
        if last_partial and i == len(sums) - 1:
            down = 1.0
        p = min(1.0, 2 * min(up, down))
        out.append((p, "high" if up <= down else "low", float(ev[i]), mean))
    return out


def _dqm_test(sub: str, alerts: Sequence[AlertRecord],
              reference: Reference | None) -> tuple[float, str]:
    """(p, text) of a subsystem's DQM alert(s) in one lumisection."""
    p_map = min((a.p_value if a.p_value is not None else 1.0) for a in alerts)
    p_cal = max((float(a.payload.get("alert_p_value") or 0.0) for a in alerts), default=0.0)
    infl = 1.0
    d = reference.dqm.get(sub) if reference is not None else None
    if d and d.get("n", 0) > 0 and p_cal > 0:
        if binomial_tail(d["k"], int(d["n"]), p_cal, True) < 0.01:
            infl = ExpectedRate.measured(d["k"], d["n"]).rate / p_cal
    p = min(1.0, p_map * infl)
    where = _dqm_where(alerts)
    return p, f"DQM {where}" if where else f"DQM {sub} alert"


def _lumi_findings(sums: list[LumiSummary], series: list[_Series], reference: Reference | None,
                   dqm: dict[int, list[AlertRecord]], last_partial: bool,
                   dist: Sequence[Sequence[Finding]] = ()
                   ) -> list[list[Finding]]:
    subsystems = sorted({str(a.payload.get("subsystem") or a.rule.removeprefix("dqm_"))
                         for v in dqm.values() for a in v}
                        | (set(reference.dqm) if reference is not None else set()))
    inputs = _input_findings(sums, reference, last_partial)
    out: list[list[Finding]] = []
    for i, s in enumerate(sums):
        raw: list[tuple[float, Finding, Level]] = []  # (p, finding w/o correction, cap)
        for ser in series:
            if not ser.tested[i] or ser.rates[i] is None:
                continue
            r = ser.rates[i]
            assert r is not None
            k = ser.k_up[i] if ser.direction[i] == "high" else ser.k_down[i]
            mu = r.rate * ser.n[i]
            f = Finding(ser.quantity, ser.kind, float(k), float(mu), int(ser.n[i]),
                        float(ser.p[i]), 1.0, "green",
                        _finding_text(ser, k, mu, float(ser.p[i]), ser.direction[i]))
            raw.append((float(ser.p[i]), f, "red"))
        inp = inputs[i]
        if inp is not None:
            p, direction, obs, exp = inp
            expect = "the reference" if reference is not None else "the run's average"
            text = (f"input {int(obs)} events, {_ratio(obs / exp if exp else math.inf)}x "
                    f"{expect} {exp:.0f}/LS" + (f" ({p_is(p)})" if p < 0.5 else ""))
            raw.append((p, Finding("input_rate", "input", obs, exp, int(obs), p, 1.0, "green",
                                   text), "amber"))
        lumi_dqm = dqm.get(s.lumi, [])
        for sub in subsystems:
            mine = [a for a in lumi_dqm
                    if str(a.payload.get("subsystem") or a.rule.removeprefix("dqm_")) == sub]
            if not mine:
                raw.append((1.0, Finding(f"dqm:{sub}", "dqm", 0.0, 0.0, 1, 1.0, 1.0, "green",
                                         f"DQM {sub}: no alert"), "red"))
                continue
            p, text = _dqm_test(sub, mine, reference)
            raw.append((p, Finding(f"dqm:{sub}", "dqm", float(len(mine)), 0.0, 1, p, 1.0,
                                   "green", f"{text} ({p_is(p)})",
                                   _dqm_where(mine)), "red"))
        m = max(len(raw), 1)
        fs: list[Finding] = []
        for p, f, cap in raw:
            pc = sidak(p, m)
            lv = level_of(pc)
            if cap == "amber" and lv == "red":
                lv = "amber"
            fs.append(Finding(f.quantity, f.kind, f.observed, f.expected, f.n, f.p_value, pc,
                              lv, f.text, f.where))  # type: ignore[arg-type]
        if i < len(dist):  # the histograms against the reference: corrected by their own
            fs.extend(dist[i])  # family's budget (alerts.distribution_checks)
        if s.unavailable:
            fs.append(Finding("unavailable", "unavailable", 0.0, 0.0, s.n_events, 1.0, 1.0,
                              "amber", "rules unavailable: " + ", ".join(sorted(s.unavailable))))
        out.append(fs)
    return out


def _trend_findings(sums: list[LumiSummary], series: list[_Series],
                    per_lumi: list[list[Finding]]) -> None:
    designs = []
    for ser in series:
        idx = np.flatnonzero(ser.tested & np.asarray([r is not None for r in ser.rates]))
        if idx.size < 3:
            continue
        mean_mu = float(np.mean([ser.mu(int(i)) for i in idx]))
        if mean_mu < MIN_TREND_COUNT:
            continue  # too rare per lumisection for a CUSUM: single events would dominate
        ratios = [r for r in CUSUM_RATIOS if r > 1 or ser.sides == "two"]
        designs.append((ser, idx, ratios))
    q = sum(len(r) for _, _, r in designs)
    best: dict[tuple[int, str], Finding] = {}
    for ser, idx, ratios in designs:
        rates = [ser.rates[i] for i in idx]
        mu = np.asarray([r.rate * ser.n[i] for r, i in zip(rates, idx) if r is not None])
        phi = max([r.phi for r in rates if r is not None] + [1.0])
        for ratio in ratios:
            up = ratio > 1
            k = ser.k_up[idx] if up else ser.k_down[idx]
            s = cusum(poisson_llr(k, mu, ratio, phi))
            for first, peak, height in excursions(s):
                p = trend_p(height, idx.size)
                pc = sidak(p, q)
                lv = level_of(pc)
                if lv == "green":
                    continue
                a, b, fitted = segment(k, mu, first, peak, up)
                if fitted == 1.0:
                    continue
                kk, mm = float(k[a:b + 1].sum()), float(mu[a:b + 1].sum())
                la, lb = sums[idx[a]].lumi, sums[idx[b]].lumi
                span = f"LS {la}" if la == lb else f"LS {la}-{lb}"
                word = "rose" if up else "fell"
                text = (f"{ser.label} {word} to {_ratio(fitted)}x {ser.expect} over {span} "
                        f"(CUSUM, {p_is(pc)})")
                f = Finding(f"trend:{ser.quantity}", "trend", kk, mm, int(ser.n[idx[a:b + 1]]
                            .sum()), p, pc, lv, text)  # type: ignore[arg-type]
                for j in range(a, b + 1):
                    key = (int(idx[j]), f.quantity)
                    if key not in best or best[key].p_corrected > pc:
                        best[key] = f
    for (i, _), f in best.items():
        per_lumi[i].append(f)


_ORDER = {"red": 0, "amber": 1, "green": 2, "idle": 3}


def _sorted(fs: Sequence[Finding]) -> list[Finding]:
    """Worst level first; within a level, this lumisection's own findings before trends."""
    return sorted(fs, key=lambda f: (_ORDER[f.level], f.kind == "trend", f.p_corrected,
                                     f.p_value))


def _finish(a: _Assessment, alerts: Mapping[int, Sequence[AlertRecord]]) -> RunStatus:
    from hotline.alerts.lumi_status import worst_level

    if not a.sums:
        return RunStatus(a.source, a.run, "idle", "no data yet", reference=a.reference_info,
                         method=METHOD)
    lumis: list[LumiStatus] = []
    for s, fs in zip(a.sums, a.per_lumi):
        fs = _sorted(fs)
        bad = [f for f in fs if f.level in ("amber", "red")]
        level: Level = worst_level(f.level for f in bad) if bad else (
            "green" if s.n_events > 0 else "idle")
        shown = [_with_where(f, alerts.get(s.lumi, ())) for f in bad] if bad else fs[:1]
        reason = "; ".join(_with_where_text(f) for f in shown[:3]) if bad else ""
        lumis.append(LumiStatus(s.lumi, level, s.n_events, tuple(shown), reason,
                                tested=tuple(fs)))
    ranges = _ranges(a, lumis, alerts)
    level = worst_level(ls.level for ls in lumis)
    n_bad = sum(ls.level in ("amber", "red") for ls in lumis)
    if not ranges:
        allf = [f for ls in lumis for f in ls.findings if f.kind != "unavailable"]
        top = min(allf, key=lambda f: f.p_corrected, default=None)
        detail = (f" (largest deviation: {top.text}, LS {_lumi_of(lumis, top)})"
                  if top is not None and top.p_value < 0.05 else "")
        reason = f"all {len(lumis)} lumisections as expected{detail}"
    else:
        def strength(r: LumiRange) -> tuple[int, float, int]:
            pcs = [f.p_corrected for ls in lumis if r.first <= ls.lumi <= r.last
                   for f in ls.findings if f.level == r.level]
            return _ORDER[r.level], min(pcs, default=1.0), r.first

        worst = min(ranges, key=strength)
        more = len(ranges) - 1
        reason = (f"{n_bad} of {len(lumis)} lumisections not green; {worst.label()}: "
                  f"{worst.reason}" + (f" (+{more} more range{'s' if more > 1 else ''})"
                                       if more else ""))
    return RunStatus(a.source, a.run, level, reason, tuple(lumis), tuple(ranges),
                     a.reference_info, METHOD)


def _lumi_of(lumis: Sequence[LumiStatus], f: Finding) -> int:
    for ls in lumis:
        if f in ls.findings:
            return ls.lumi
    return -1


def _alerts_for(f: Finding, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
    q = f.quantity.removeprefix("trend:")
    if q.startswith("rule:"):
        rule = q.removeprefix("rule:")
        return [a for a in alerts if a.rule == rule]
    if f.kind == "ae" or (f.kind == "trend" and ae_rule_p(q) is not None):
        return [a for a in alerts if a.kind == "ae"]
    return []


def _with_where(f: Finding, alerts: Sequence[AlertRecord]) -> Finding:
    if f.where or not alerts:
        return f
    where = locate(_alerts_for(f, alerts))
    if not where:
        return f
    return Finding(f.quantity, f.kind, f.observed, f.expected, f.n, f.p_value, f.p_corrected,
                   f.level, f.text, where)


def _with_where_text(f: Finding) -> str:
    if f.where and f.kind not in ("dqm", "dist"):
        return f"{f.text}, alerts point to {f.where}"
    return f.text


def _ranges(a: _Assessment, lumis: list[LumiStatus],
            alerts: Mapping[int, Sequence[AlertRecord]]) -> list[LumiRange]:
    from hotline.alerts.lumi_status import worst_level

    groups: list[list[int]] = []  # positions in lumis
    for i, ls in enumerate(lumis):
        if ls.level not in ("amber", "red"):
            continue
        if groups and lumis[groups[-1][-1]].lumi == ls.lumi - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    by_q = {s.quantity: s for s in a.series}
    out = []
    for g in groups:
        level = worst_level(lumis[i].level for i in g)
        lumi_set = [lumis[i].lumi for i in g]
        quantities: dict[str, float] = {}
        extra: list[str] = []
        for i in g:
            for f in lumis[i].findings:
                if f.level not in ("amber", "red"):
                    continue
                base = f.quantity.removeprefix("trend:")
                if base in by_q:
                    quantities[base] = min(quantities.get(base, 1.0), f.p_corrected)
                elif f.kind == "dqm":
                    quantities.setdefault("dqm", 0.0)
                elif f.kind != "trend" and not any(f.text in x for x in extra):
                    # (a distribution trend's text quotes its strongest lumisection's)
                    extra = [x for x in extra if x not in f.text]
                    extra.append(f.text if f.kind != "input" else "unusual input rate")
        parts: list[tuple[float, str]] = []
        range_alerts = [x for ls in lumi_set for x in alerts.get(ls, ())]
        for q in quantities:
            if q == "dqm":
                continue
            ser = by_q[q]
            pos = [i for i in g if ser.tested[i] and ser.rates[i] is not None]
            if not pos:
                continue
            kk_up = float(ser.k_up[pos].sum())
            kk_dn = float(ser.k_down[pos].sum())
            nn = int(ser.n[pos].sum())
            mu = float(sum(ser.mu(i) for i in pos))
            r0 = ser.rates[pos[0]]
            assert r0 is not None
            rate = ExpectedRate(mu / nn if nn else r0.rate, r0.n_ref, r0.k_ref, r0.phi,
                                r0.n_lumi)
            up = rate.tail(kk_up, nn, True)
            down = rate.tail(kk_dn, nn, False) if ser.sides == "two" else 1.0
            high = up <= down
            k = kk_up if high else kk_dn
            p = up if high else down
            text = _finding_text(ser, k, mu, p, "high" if high else "low")
            where = locate(_alerts_for(Finding(q, ser.kind, 0, 0, 0, 1, 1, "green", ""),
                                       range_alerts)) if range_alerts else ""
            if where:
                text += f", alerts point to {where}"
            parts.append((p, text))
        parts.sort()
        if parts and parts[0][0] < AMBER_P:  # the range's own evidence, not the marginal
            parts = [x for x in parts if x[0] < AMBER_P]
        texts = [t for _, t in parts[:2]]
        dqm_alerts_r = [x for ls in lumi_set for x in a.dqm.get(ls, [])]
        if "dqm" in quantities and dqm_alerts_r:
            texts.append(f"DQM: {_dqm_where(dqm_alerts_r)}")
        texts += extra[:2]
        out.append(LumiRange(lumi_set[0], lumi_set[-1], level, "; ".join(texts)
                             or lumis[g[0]].reason))
    return out


# ------------------------------------------------------------------ from the store


def assess_run(store: Any, run: int, source: str | None = None,
               reference: Reference | None | Literal[False] = None,
               model: AEModel | str | None | Literal[False] = None,
               registry: str | None = None, max_alerts: int = 5000) -> RunStatus:
    """The status of ``run`` from the store: its summaries, DQM alerts, the reference
    (None: the current one of the source, ``False``: none, leave-one-out) and the AE model
    (None: the one the run's AE alerts name, at their version; ``False``: none; a name).
    The AE and classic alerts of non-green lumisections (at most ``max_alerts`` per range)
    localise the reasons. The run is complete: its last lumisection is tested like any.
    """
    src = run_source(store, run, source)
    sums = store.summaries(source=src, run=run, hists=True)
    ref: Reference | None
    if reference is None:
        ref = current_reference(store, src)
    else:
        ref = reference or None
    ae: AEModel | None = None
    note = ""
    if model is not False:
        if isinstance(model, AEModel):
            ae = model
        else:
            name, version = (model, None) if isinstance(model, str) else _run_model(store, run,
                                                                                  src, sums)
            if name:
                try:
                    ae = load_ae_model(name, version, registry)
                except HotlineError as exc:
                    note = f"model card unavailable ({exc}); AE rules tested at their own p"
    dqm = dqm_alerts(store, run, src)
    a = _assess(sums, (), ref, dqm, None, ae, last_partial=False)
    if note:
        a.reference_info["model_note"] = note
    flagged = [s.lumi for s, fs in zip(a.sums, a.per_lumi)
               if any(f.level in ("amber", "red") for f in fs)]
    alerts: dict[int, list[AlertRecord]] = {}
    if flagged:
        for x in store.alerts(run=run, source=src, kind=["ae", "classic"], lumi=flagged,
                              limit=max_alerts * 4):
            alerts.setdefault(x.lumi, []).append(x)
    return _finish(a, alerts)


def _run_model(store: Any, run: int, source: str,
               sums: Sequence[LumiSummary]) -> tuple[str | None, str | None]:
    """(model name, version) of the run's AE rule: from its alerts, else from its name."""
    rules = sorted({r for s in sums for r in s.score_hist})
    if not rules:
        return None, None
    hit = store.alerts(run=run, source=source, kind="ae", limit=1)
    if hit and hit[0].payload.get("model"):
        return str(hit[0].payload["model"]), (str(hit[0].payload["version"])
                                              if hit[0].payload.get("version") else None)
    parsed = ae_rule_p(rules[0])
    return (parsed[0], None) if parsed else (None, None)
