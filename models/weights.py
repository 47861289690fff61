"""Event weights of the generated samples: biased-sampling ``genWeight`` -> physical weights.

The SM mixture (``sm_mix``) holds its components (W, QCD, Z, ttbar) in the
ADC2021 fractions *by event count*. Inside a component, events drawn with a
biased generator (QCD: pTHat-biased sampling) carry ``genWeight`` = the inverse
bias, on an arbitrary scale. The physical weight of an event is therefore its
``genWeight`` normalised to mean 1 within its component (``sample`` code), which
keeps every component's share of the mixture and restores the right spectrum
inside it. Unbiased components (``genWeight`` = 1) are unchanged.

Every rate-like number (p-value thresholds, FPR, AUC, alert fractions) is a
weighted quantity; the Kish effective size ``(sum w)^2 / sum w^2`` says how many
unweighted events the weighted sample is worth.
"""

from __future__ import annotations

import numpy as np

from hotline.errors import ModelError


def component_weights(sample: np.ndarray | None, gen_weight: np.ndarray | None,
                      n: int | None = None) -> np.ndarray:
    """Physical event weights: ``gen_weight`` normalised to mean 1 per ``sample`` code.

    Without ``gen_weight`` every event weighs 1 (``n`` events). Non-finite or negative
    generator weights are refused (they would silently bias every threshold).
    """
    if gen_weight is None:
        if n is None:
            raise ModelError("component_weights needs gen_weight or n")
        return np.ones(n, np.float64)
    w = np.asarray(gen_weight, np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ModelError("genWeight holds NaN/inf or negative values; cannot weight events")
    codes = np.zeros(len(w), np.int64) if sample is None else np.asarray(sample, np.int64)
    out = np.empty_like(w)
    for c in np.unique(codes):
        sel = codes == c
        m = w[sel].mean()
        out[sel] = w[sel] / m if m > 0 else 1.0
    return out


def weighted_fraction(hit: np.ndarray, w: np.ndarray) -> float | None:
    """Weighted fraction of True in ``hit`` (None when there is no weight)."""
    return float(np.average(hit, weights=w)) if len(w) and w.sum() > 0 else None


def kish(weights: np.ndarray | None, n: int | None = None) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2 (``n`` when unweighted)."""
    if weights is None:
        return float(n or 0)
    w = np.asarray(weights, np.float64)
    s2 = float((w * w).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0
