"""Threshold calibration: empirical quantiles, GPD tail extrapolation, refusals, p-values."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.errors import ModelError
from hotline.models.thresholds import ReferenceDistribution, calibrate, p_for_rate


def test_empirical_thresholds_match_quantiles():
    s = np.random.default_rng(1).exponential(1.0, 200_000)
    cal = calibrate(s, (0.05, 0.01, 1e-3))
    for t in cal["thresholds"]:
        assert t["method"] == "empirical" and t["n_ref"] == 200_000
        assert t["threshold"] == pytest.approx(-np.log(t["p"]), rel=0.05)
        assert 0 < t["uncertainty"] < 0.2
    assert cal["refused"] == []


def test_gpd_extrapolation_recovers_exponential_tail_with_uncertainty():
    s = np.random.default_rng(2).exponential(1.0, 20_000)
    cal = calibrate(s, (1e-4, 1e-5), n_boot=40)
    by_p = {t["p"]: t for t in cal["thresholds"]}
    for p in (1e-4, 1e-5):
        t = by_p[p]
        assert t["method"] == "gpd"
        truth = -np.log(p)
        # within 3 sigma of the bootstrap uncertainty (and the uncertainty is not absurd)
        assert abs(t["threshold"] - truth) < 3 * t["uncertainty"] + 0.05 * truth
        assert 0 < t["uncertainty"] < 0.5 * truth
    assert by_p[1e-5]["uncertainty"] > by_p[1e-4]["uncertainty"]


def test_too_small_reference_is_refused_clearly():
    s = np.random.default_rng(3).exponential(1.0, 500)
    cal = calibrate(s, (0.05, 1e-3, 1e-5))
    assert [t["p"] for t in cal["thresholds"]] == [0.05, 1e-3]
    (r,) = cal["refused"]
    assert r["p"] == 1e-5 and "too small" in r["reason"] and "500" in r["reason"]
    with pytest.raises(ModelError, match=">= 20 finite"):
        calibrate(np.array([1.0, np.nan] * 20))


def test_p_value_is_inverse_of_threshold_and_monotone():
    s = np.random.default_rng(4).gamma(2.0, 1.0, 50_000)
    cal = calibrate(s)
    ref = ReferenceDistribution.from_dict(cal["reference"])
    for t in cal["thresholds"]:
        assert ref.p_value(np.array([t["threshold"]]))[0] == pytest.approx(t["p"], rel=0.1)
        assert ref.isf(t["p"]) == pytest.approx(t["threshold"], rel=0.02)
    grid = np.linspace(0, 40, 500)
    pv = ref.p_value(grid)
    assert pv[0] == 1.0 and (np.diff(pv) <= 1e-15).all() and pv[-1] < 1e-5


def test_rate_to_p_value():
    assert p_for_rate(30, 1000.0) == pytest.approx(30 / 86_400_000)
    with pytest.raises(ModelError):
        p_for_rate(1e9, 1.0)
