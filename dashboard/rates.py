"""Per-lumisection rates of one run and its green / amber / red status, from the summaries alone.

Owns the rate series the overview draws (``input_series``, ``rule_series``, ``ae_series``),
the status colours (``STATUS_COLORS``; the verdict itself is the status engine's,
``alerts.run_status``), ``bin_weights_above`` and
``SERIES_LUMIS`` (lumisections kept in a series). All functions are pure: they take the
run's ``LumiSummary`` list (ordered by lumisection) and return plain dicts and lists.

Rates are shown as *fraction of events accepted* per lumisection: for an AE threshold at
background p-value ``p`` the expected fraction is ``p``, and the band is the +-2 sigma
Poisson interval ``p +- 2 sqrt(p n) / n`` for the ``n`` events of that lumisection. Rates
above a threshold are counted from the summaries' fixed log-score bins
(``stream.pipeline.score_bin_edges``, 0.1 dex wide): bins above the threshold fully, the
bin holding it by the log-uniform fraction above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hotline.alerts.records import LumiSummary
from hotline.dashboard.model_info import Threshold
from hotline.stream.pipeline import score_bin_edges

__all__ = ["SERIES_LUMIS", "STATUS_COLORS", "ae_series", "bin_weights_above", "input_series",
           "rule_series"]

#: lumisections kept in the time series
SERIES_LUMIS = 500

STATUS_COLORS = {"green": "#2e7d32", "amber": "#f9a825", "red": "#c62828", "idle": "#757575"}


def bin_weights_above(threshold: float) -> np.ndarray:
    """Per stored score bin (underflow, SCORE_BINS, overflow): fraction above ``threshold``.

    Bins fully above count 1, the bin holding the threshold counts the log-uniform
    fraction of its width above it, so rates above a threshold are unbiased to first
    order even though the summaries only keep binned scores.
    """
    edges = score_bin_edges()
    lo = np.concatenate([[0.0], edges])
    hi = np.concatenate([edges, [np.inf]])
    w = (lo >= threshold).astype(float)
    inside = (lo < threshold) & (threshold < hi) & (lo > 0) & np.isfinite(hi)
    if inside.any():
        i = int(np.flatnonzero(inside)[0])
        w[i] = (math.log(hi[i]) - math.log(threshold)) / (math.log(hi[i]) - math.log(lo[i]))
    return w


def rule_series(sums: Sequence[LumiSummary]) -> dict[str, dict[str, list]]:
    """Per rule: ``{"lumi": [...], "n": [...], "count": [...], "frac": [...]}`` over ``sums``."""
    out: dict[str, dict[str, list]] = {}
    rules = sorted({r for s in sums for r in s.rule_counts})
    for rule in rules:
        d: dict[str, list] = {"lumi": [], "n": [], "count": [], "frac": []}
        for s in sums:
            if rule not in s.rule_counts:
                continue
            good = max(s.n_events - s.n_bad, 0)
            d["lumi"].append(s.lumi)
            d["n"].append(good)
            d["count"].append(s.rule_counts[rule])
            d["frac"].append(s.rule_counts[rule] / good if good else float("nan"))
        out[rule] = d
    return out


def input_series(sums: Sequence[LumiSummary]) -> dict[str, list]:
    """Events (and quarantined events) per lumisection of ``sums``."""
    return {"lumi": [s.lumi for s in sums], "n": [s.n_events for s in sums],
            "bad": [s.n_bad for s in sums]}


def ae_series(sums: Sequence[LumiSummary], rule: str | None,
              thresholds: Sequence[Threshold]) -> dict[str, dict[str, list]]:
    """Per AE threshold: observed and expected fraction per lumisection with a 2-sigma band.

    ``rule`` is the AE rule whose score histograms are counted; ``{}`` without one or
    without thresholds.
    """
    if rule is None or not thresholds:
        return {}
    sums = [s for s in sums if rule in s.score_hist]
    out = {}
    for t in thresholds:
        above = bin_weights_above(t.threshold)
        d: dict[str, list] = {"lumi": [], "n": [], "frac": [], "expected": [], "lo": [],
                              "hi": [], "pull": []}
        for s in sums:
            h = np.asarray(s.score_hist[rule], dtype=np.int64)
            n = int(h.sum())
            k = float(h @ above[: h.size])
            exp = t.p * n
            sig = math.sqrt(exp) if exp > 0 else 1.0
            d["lumi"].append(s.lumi)
            d["n"].append(n)
            d["frac"].append(k / n if n else float("nan"))
            d["expected"].append(t.p)
            d["lo"].append(max(t.p - 2 * sig / n, 0.0) if n else t.p)
            d["hi"].append(t.p + 2 * sig / n if n else t.p)
            d["pull"].append((k - exp) / sig)
        out[t.label] = d
    return out
