"""Threshold calibration from a reference (background) score distribution.

``calibrate(scores, p_values)`` turns reference scores into:

* ``thresholds`` -- for each p: the score above which a background event has
  probability p, with ``n_ref`` (reference size), ``method`` (``empirical`` when
  the reference holds at least ``MIN_EXPECTED`` events above the threshold,
  else ``gpd``: a generalised-Pareto fit to the upper tail, extrapolated) and
  ``uncertainty`` (one-sigma: binomial order-statistic interval for empirical,
  bootstrap of the tail fit for gpd);
* ``refused`` -- p-values the reference cannot support (extrapolation beyond
  ``MAX_EXTRAPOLATION`` x the reference size, or too few tail events to fit),
  each with the reason, so a too-small reference is visible, never hidden;
* ``reference`` -- a compact survival table (score vs log10 p) plus the tail
  parameters, from which ``ReferenceDistribution.p_value`` maps any score to a
  p-value at serving time with numpy only (no scipy).

Weighted references (``weights``: physical event weights of a biased-sampling
sample, e.g. QCD drawn with a pTHat bias) give weighted quantiles, a weighted
maximum-likelihood tail fit and counting criteria on the Kish effective size
``(sum w)^2 / sum w^2`` (``n_eff`` in the card) instead of the raw event count.

``p_for_rate(alerts_per_day, input_rate_hz)`` converts a target alert rate into a
p-value (p = rate_out / rate_in).

``validate_thresholds(entries, where)`` checks a card's thresholds when it is loaded:
each p a number in (0, 1), each threshold a finite number >= 0 (scores are losses),
each p listed once, and thresholds monotone in p (a smaller p-value never has a
smaller threshold); the first offending entry is a one-line ``ModelError``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hotline.errors import ModelError
from hotline.models.weights import kish

log = logging.getLogger(__name__)

DEFAULT_P_VALUES = (0.05, 0.01, 1e-3, 1e-4, 1e-5)
MIN_EXPECTED = 25  #: reference events above an empirical threshold
MIN_TAIL = 50  #: exceedances needed for a tail fit
TAIL_FRACTION = 0.02  #: fraction of the reference used for the tail fit (>= MIN_TAIL events)
MAX_EXTRAPOLATION = 100.0  #: refuse p < 1 / (MAX_EXTRAPOLATION * n_ref)
SECONDS_PER_DAY = 86_400.0


def p_for_rate(alerts_per_day: float, input_rate_hz: float) -> float:
    """The p-value that gives ``alerts_per_day`` alerts at ``input_rate_hz`` background events/s."""
    if input_rate_hz <= 0 or alerts_per_day <= 0:
        raise ModelError("alert rate and input rate must be positive")
    p = alerts_per_day / (input_rate_hz * SECONDS_PER_DAY)
    if p >= 1:
        raise ModelError(
            f"{alerts_per_day} alerts/day at {input_rate_hz} events/s means p = {p:.3g} >= 1"
        )
    return p


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool, not a string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def validate_thresholds(entries: Any, where: str) -> list[dict[str, Any]]:
    """Check a model card's ``thresholds`` list (see module docstring); returns it.

    ``where`` names the card in the error (e.g. its path). Entry numbers in messages
    count from 0, as they appear in the card's JSON list.
    """
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ModelError(f"model card {where}: 'thresholds' must be a list of "
                         f"{{p, threshold}} entries, got {type(entries).__name__}")
    seen: list[tuple[float, float, int]] = []
    for i, entry in enumerate(entries):
        name = f"thresholds[{i}]"
        if not isinstance(entry, dict):
            raise ModelError(f"model card {where}: {name} must be an object with p and "
                             f"threshold, got {entry!r:.60}")
        for key in ("p", "threshold"):
            if key not in entry:
                raise ModelError(f"model card {where}: {name} has no '{key}'")
        p, t = _number(entry["p"]), _number(entry["threshold"])
        if p is None or not (0.0 < p < 1.0):
            raise ModelError(f"model card {where}: {name} has p = {entry['p']!r:.40}; "
                             "a p-value must be a number in (0, 1)")
        if t is None or not np.isfinite(t):
            raise ModelError(f"model card {where}: {name} (p = {p:g}) has threshold "
                             f"{entry['threshold']!r:.40}; it must be a finite number")
        if t < 0:
            raise ModelError(f"model card {where}: {name} (p = {p:g}) has threshold {t:g}; "
                             "scores are losses, a threshold must be >= 0")
        seen.append((p, t, i))
    seen.sort()
    for (p_lo, t_lo, i_lo), (p_hi, t_hi, i_hi) in zip(seen, seen[1:]):
        if p_lo == p_hi:
            raise ModelError(f"model card {where}: p = {p_lo:g} is listed twice "
                             f"(thresholds[{i_lo}] and thresholds[{i_hi}])")
        if t_lo < t_hi:
            raise ModelError(
                f"model card {where}: thresholds are not monotone in p: thresholds[{i_lo}] "
                f"(p = {p_lo:g}) has threshold {t_lo:g}, below {t_hi:g} of thresholds[{i_hi}] "
                f"(p = {p_hi:g}); a smaller p-value needs a threshold at least as high")
    return entries


def _gpd_sf(y: np.ndarray, c: float, scale: float) -> np.ndarray:
    """Survival function of the generalised Pareto distribution (numpy only)."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if abs(c) < 1e-9:
        return np.exp(-y / scale)
    base = 1.0 + c * y / scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(base > 0, np.power(np.maximum(base, 1e-300), -1.0 / c), 0.0)
    return out


def _gpd_isf(q: float, c: float, scale: float) -> float:
    if abs(c) < 1e-9:
        return -scale * np.log(q)
    return scale / c * (q ** (-c) - 1.0)


def _fit_tail(exc: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """GPD (shape, scale) of exceedances ``exc``; weighted maximum likelihood with ``w``."""
    from scipy.stats import genpareto

    c, _, scale = genpareto.fit(exc, floc=0.0)
    if w is None:
        return float(c), float(scale)
    from scipy.optimize import minimize

    wn = np.asarray(w, np.float64) / np.mean(w)

    def nll(theta: np.ndarray) -> float:
        k, sc = float(theta[0]), float(np.exp(theta[1]))
        z = 1.0 + k * exc / sc
        if (z <= 0).any():
            return 1e300
        logf = -np.log(sc) - (np.log(z) / k + np.log(z) if abs(k) > 1e-9 else exc / sc)
        return float(-(wn * logf).sum())

    res = minimize(nll, np.array([c, np.log(max(scale, 1e-12))]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    return float(res.x[0]), float(np.exp(res.x[1]))


class _WeightedSample:
    """Sorted scores with weights: weighted quantiles and survival fractions."""

    def __init__(self, scores: np.ndarray, weights: np.ndarray) -> None:
        o = np.argsort(scores, kind="stable")
        self.s = scores[o]
        self.w = weights[o]
        self.total = float(self.w.sum())
        # mid-point cumulative fractions (Hazen): unweighted this is np.quantile-like
        self.cdf = (np.cumsum(self.w) - 0.5 * self.w) / self.total

    def quantile(self, q: np.ndarray | Sequence[float] | float) -> np.ndarray:
        return np.interp(q, self.cdf, self.s)

    def above(self, t: float) -> np.ndarray:
        return self.s > t


@dataclass
class ReferenceDistribution:
    """Survival function of the reference scores: a table plus a GPD tail above ``u``."""

    scores: np.ndarray  #: increasing scores
    log10_p: np.ndarray  #: decreasing log10 survival probabilities at ``scores``
    n_ref: int
    u: float | None = None
    p_u: float | None = None
    shape: float | None = None
    scale: float | None = None

    def tail(self) -> tuple[float, float, float, float] | None:
        """The GPD tail model ``(u, p_u, shape, scale)``; None when there is no tail fit."""
        if self.u is None:
            return None
        if self.p_u is None or self.shape is None or self.scale is None:
            raise ModelError(f"reference distribution: the tail above u = {self.u} lacks "
                             "p_u, shape or scale")
        return self.u, self.p_u, self.shape, self.scale

    def p_value(self, score: np.ndarray) -> np.ndarray:
        """p-value (background survival probability) of each score; vectorised."""
        s = np.asarray(score, dtype=np.float64)
        p = np.power(10.0, np.interp(s, self.scores, self.log10_p,
                                     left=0.0, right=float(self.log10_p[-1])))
        tail = self.tail()
        if tail is not None:
            u, p_u, c, sc = tail
            above = s > u
            if above.any():
                p[above] = p_u * _gpd_sf(s[above] - u, c, sc)
        else:
            # no tail model: beyond the largest reference score p is at most 1/n_ref
            p[s > self.scores[-1]] = min(float(10 ** self.log10_p[-1]), 1.0 / self.n_ref)
        return p

    def isf(self, p: float) -> float:
        """The score whose p-value is ``p`` (inverse survival function)."""
        if not 0 < p < 1:
            raise ModelError(f"p-value must be in (0, 1), got {p}")
        if self.n_ref * p * MAX_EXTRAPOLATION < 1:
            raise ModelError(
                f"reference of {self.n_ref:,} events is too small for p = {p:g} "
                f"(more than {MAX_EXTRAPOLATION:.0f}x extrapolation); recalibrate with "
                f">= {int(1 / (p * MAX_EXTRAPOLATION)):,} reference events"
            )
        tail = self.tail()
        if tail is not None and p < tail[1]:
            u, p_u, c, sc = tail
            return float(u + _gpd_isf(p / p_u, c, sc))
        if tail is None and p < 10 ** self.log10_p[-1]:
            raise ModelError(f"p = {p:g} is beyond the reference table and no tail fit exists")
        return float(np.interp(np.log10(p), self.log10_p[::-1], self.scores[::-1]))

    def to_dict(self) -> dict[str, Any]:
        tail = None
        if self.u is not None:
            tail = {"u": self.u, "p_u": self.p_u, "shape": self.shape, "scale": self.scale}
        return {"n_ref": self.n_ref, "scores": [float(v) for v in self.scores],
                "log10_p": [float(v) for v in self.log10_p], "tail": tail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceDistribution:
        try:
            tail = d.get("tail") or {}
            scores = np.asarray(d["scores"], dtype=np.float64)
            logp = np.asarray(d["log10_p"], dtype=np.float64)
            if scores.size < 2 or scores.shape != logp.shape:
                raise ValueError("scores and log10_p must be equal-length lists (>= 2)")
            return cls(scores, logp, int(d["n_ref"]), tail.get("u"), tail.get("p_u"),
                       tail.get("shape"), tail.get("scale"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"invalid reference distribution in model card: {exc}") from None


def reference_contributions(
    per_type: np.ndarray, per_object: np.ndarray, type_labels: list[str],
    object_labels: list[str], weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """(Weighted) mean and std of per-type / per-object contributions on the reference."""

    def stats(a: np.ndarray) -> tuple[list[float], list[float]]:
        a = np.asarray(a, np.float64)
        mean = np.average(a, axis=0, weights=weights)
        std = np.sqrt(np.average((a - mean) ** 2, axis=0, weights=weights))
        return [float(v) for v in mean], [float(v) for v in std]

    tm, ts = stats(per_type)
    om, os_ = stats(per_object)
    return {"types": {"labels": list(type_labels), "mean": tm, "std": ts},
            "objects": {"labels": list(object_labels), "mean": om, "std": os_}}


def _reference(grid_p: np.ndarray, q: np.ndarray, n_ref: int,
               tail: tuple[float, float, float, float] | None) -> ReferenceDistribution:
    """Survival table at ``grid_p`` (quantiles ``q``), cut at the tail start when fitted."""
    if tail is None:
        return ReferenceDistribution(q, np.log10(grid_p), n_ref)
    u, p_u, c, sc = tail
    keep = grid_p >= p_u
    return ReferenceDistribution(q[keep], np.log10(grid_p[keep]), n_ref, u, p_u, c, sc)


def _gpd_threshold(p: float, tail: tuple[float, float, float, float],
                   boot: list[tuple[float, float]]) -> tuple[float, float]:
    """Tail-fit threshold for ``p`` and its bootstrap standard deviation."""
    u, p_u, c, sc = tail
    ts = [u + _gpd_isf(p / p_u, bc, bs) for bc, bs in boot]
    return float(u + _gpd_isf(p / p_u, c, sc)), (float(np.std(ts)) if ts else float("nan"))


def calibrate(
    scores: np.ndarray,
    p_values: tuple[float, ...] | list[float] = DEFAULT_P_VALUES,
    seed: int = 0,
    n_boot: int = 100,
    weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Thresholds for ``p_values`` from reference ``scores`` (see module docstring).

    ``weights``: physical event weights (None: every event weighs 1). Returns
    ``{"thresholds": [...], "refused": [...], "reference": {...}}`` for the model card.
    """
    if weights is not None:
        return _calibrate_weighted(np.asarray(scores, np.float64),
                                   np.asarray(weights, np.float64), p_values, seed, n_boot)
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.size < 20 or not np.isfinite(s).all():
        raise ModelError(
            f"cannot calibrate: the reference needs >= 20 finite scores, got {s.size}"
            + ("" if np.isfinite(s).all() else " (with NaN/inf)")
        )
    n = s.size
    n_tail = max(MIN_TAIL, int(TAIL_FRACTION * n))
    tail_ok = n_tail <= n // 2
    ref: ReferenceDistribution
    boot: list[tuple[float, float]] = []
    if tail_ok:
        u = float(s[n - n_tail - 1])
        p_u = n_tail / n
        exc = s[n - n_tail:] - u
        c, sc = _fit_tail(exc)
        rng = np.random.default_rng(seed)
        for _ in range(n_boot):
            try:
                boot.append(_fit_tail(rng.choice(exc, exc.size, replace=True)))
            except Exception:  # noqa: BLE001 - a failed resample fit is just skipped
                continue
    grid_p = np.logspace(0, np.log10(1.0 / n), 200)
    tail = (u, p_u, c, sc) if tail_ok else None
    ref = _reference(grid_p, np.quantile(s, 1.0 - grid_p), n, tail)

    thresholds: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for p in sorted(p_values, reverse=True):
        p = float(p)
        if not 0 < p < 1:
            raise ModelError(f"p-value must be in (0, 1), got {p}")
        if n * p >= MIN_EXPECTED:
            t = float(np.quantile(s, 1.0 - p))
            sig = np.sqrt(n * p * (1 - p))
            lo = float(np.quantile(s, max(0.0, 1.0 - (n * p + sig) / n)))
            hi = float(np.quantile(s, min(1.0, 1.0 - (n * p - sig) / n)))
            thresholds.append({"p": p, "threshold": t, "n_ref": n, "method": "empirical",
                               "uncertainty": (hi - lo) / 2})
            continue
        if n * p * MAX_EXTRAPOLATION < 1:
            refused.append({"p": p, "n_ref": n, "reason": (
                f"reference of {n:,} events is too small for p = {p:g}: it would need "
                f"extrapolating {1 / (n * p):.0f}x beyond the reference size "
                f"(limit {MAX_EXTRAPOLATION:.0f}x); use >= {int(1 / (p * MAX_EXTRAPOLATION)):,} "
                "reference events")})
            continue
        if tail is None:
            refused.append({"p": p, "n_ref": n, "reason": (
                f"reference of {n:,} events has fewer than {2 * MIN_TAIL} events; "
                "no tail fit possible")})
            continue
        t, unc = _gpd_threshold(p, tail, boot)
        thresholds.append({"p": p, "threshold": t, "n_ref": n, "method": "gpd",
                           "uncertainty": unc, "tail": {"n_tail": n_tail, "u": u,
                                                        "shape": c, "scale": sc}})
    for r in refused:
        log.info("threshold refused: %s", r["reason"])
    return {"thresholds": thresholds, "refused": refused, "reference": ref.to_dict()}


def _calibrate_weighted(
    scores: np.ndarray, weights: np.ndarray, p_values: tuple[float, ...] | list[float],
    seed: int, n_boot: int,
) -> dict[str, Any]:
    """``calibrate`` for a weighted reference: weighted quantiles, Kish-size criteria."""
    if scores.shape != weights.shape:
        raise ModelError(f"calibration weights: {weights.shape} weights for "
                         f"{scores.shape} scores")
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise ModelError("calibration weights must be finite, >= 0 and not all 0")
    if scores.size < 20 or not np.isfinite(scores).all():
        raise ModelError(
            f"cannot calibrate: the reference needs >= 20 finite scores, got {scores.size}"
            + ("" if np.isfinite(scores).all() else " (with NaN/inf)"))
    ws = _WeightedSample(scores, weights)
    n = scores.size
    n_eff = kish(weights)
    tail_p = max(TAIL_FRACTION, MIN_TAIL / n_eff)
    u = float(ws.quantile(1.0 - tail_p))
    above = ws.above(u)
    tail_ok = int(above.sum()) >= MIN_TAIL and tail_p <= 0.5
    boot: list[tuple[float, float]] = []
    if tail_ok:
        exc, wt = ws.s[above] - u, ws.w[above]
        p_u = float(wt.sum() / ws.total)
        c, sc = _fit_tail(exc, wt)
        rng = np.random.default_rng(seed)
        for _ in range(n_boot):
            i = rng.integers(0, exc.size, exc.size)
            try:
                boot.append(_fit_tail(exc[i], wt[i]))
            except Exception:  # noqa: BLE001 - a failed resample fit is just skipped
                continue
    n_ref_eff = max(int(round(n_eff)), 1)
    grid_p = np.logspace(0, np.log10(1.0 / n_ref_eff), 200)
    tail = (u, p_u, c, sc) if tail_ok else None
    ref = _reference(grid_p, ws.quantile(1.0 - grid_p), n_ref_eff, tail)
    thresholds: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for p in sorted(p_values, reverse=True):
        p = float(p)
        if not 0 < p < 1:
            raise ModelError(f"p-value must be in (0, 1), got {p}")
        t = float(ws.quantile(1.0 - p))
        sel = ws.above(t)
        if kish(ws.w[sel]) >= MIN_EXPECTED and n_eff * p >= MIN_EXPECTED:
            dp = np.sqrt(p * (1 - p) / n_eff)
            lo, hi = ws.quantile([1.0 - min(p + dp, 1.0), 1.0 - max(p - dp, 0.0)])
            thresholds.append({"p": p, "threshold": t, "n_ref": n, "n_eff": round(n_eff, 1),
                               "method": "empirical", "uncertainty": float(hi - lo) / 2})
            continue
        if n_eff * p * MAX_EXTRAPOLATION < 1:
            refused.append({"p": p, "n_ref": n, "n_eff": round(n_eff, 1), "reason": (
                f"weighted reference of {n:,} events (Kish effective size {n_eff:,.0f}) is "
                f"too small for p = {p:g}: it would need extrapolating {1 / (n_eff * p):.0f}x "
                f"(limit {MAX_EXTRAPOLATION:.0f}x); use >= "
                f"{int(1 / (p * MAX_EXTRAPOLATION)):,} effective reference events")})
            continue
        if tail is None:
            refused.append({"p": p, "n_ref": n, "n_eff": round(n_eff, 1), "reason": (
                f"weighted reference of {n:,} events has fewer than {MIN_TAIL} events in its "
                "upper tail; no tail fit possible")})
            continue
        t, unc = _gpd_threshold(p, tail, boot)
        thresholds.append({"p": p, "threshold": t, "n_ref": n, "n_eff": round(n_eff, 1),
                           "method": "gpd", "uncertainty": unc,
                           "tail": {"n_tail": int(above.sum()), "u": u, "p_u": p_u,
                                    "shape": c, "scale": sc}})
    for r in refused:
        log.info("threshold refused: %s", r["reason"])
    return {"thresholds": thresholds, "refused": refused, "reference": ref.to_dict()}
