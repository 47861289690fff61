"""Statistical baselines against a reference run: pulls, chi2 per unit, beta-binomial."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import betabinom

from hotline.detectors.dqm_baselines import (
    Reference,
    available_baselines,
    beta_binomial,
    chi2_unit,
    get_baseline,
    poisson_pull,
)
from hotline.detectors.geometry import get_geometry
from hotline.detectors.occupancy import synthesize_lumis
from hotline.detectors.occupancy_faults import Fault, inject
from hotline.errors import ConfigError


@pytest.fixture(scope="module")
def setup():
    geo = get_geometry("calo_regions")
    ref_ls = synthesize_lumis(geo, 50, seed=1, run=2, pileup=(40.0, 40.0), lumi_spread=0.0)
    ref = Reference.from_maps(geo, ref_ls.counts, ref_ls.n_events)
    good = synthesize_lumis(geo, 200, seed=2, run=3, pileup=(40.0, 40.0), lumi_spread=0.0)
    return geo, ref, good


def test_pulls_are_standard_normal_on_good_maps(setup):
    geo, ref, good = setup
    r = poisson_pull(good.counts, ref)
    assert r.cell.shape == (200, geo.n_cells)
    assert abs(r.cell.mean()) < 0.05 and 0.9 < r.cell.std() < 1.1
    bb = beta_binomial(good.counts, ref)
    # with a large reference the beta-binomial pull is close to the Poisson pull
    assert np.corrcoef(bb.cell.ravel(), r.cell.ravel())[0, 1] > 0.98
    # chi2 per unit gives uniform p-values: ~1 % of units below p = 0.01
    c = chi2_unit(good.counts, ref)
    assert 0.003 < (c.unit > 2).mean() < 0.03


def test_hot_region_is_found_by_every_baseline(setup):
    geo, ref, good = setup
    bad, (t,) = inject(good.counts[0], geo, [Fault("hot_channel", 3, seed=1)])
    for name in available_baselines():
        r = get_baseline(name)(bad[None], ref)
        assert r.total[0] > 8, name
        assert int(np.argmax(r.level_scores("channel")[0])) == t.units[0], name


def test_sector_drop_localised_by_chi2(setup):
    geo, ref, good = setup
    bad, (t,) = inject(good.counts[1], geo, [Fault("hv_drop", 0.3, seed=2)])
    r = chi2_unit(bad[None], ref)
    assert int(np.argmax(r.level_scores("sector")[0])) == t.units[0]


def test_beta_binomial_pmf_matches_scipy():
    from hotline.detectors.dqm_baselines import _bb_logpmf

    k, n, a, b = np.array([3.0, 10.0]), np.array([20.0, 20.0]), 4.0, 9.0
    np.testing.assert_allclose(_bb_logpmf(k, n, a, b), betabinom.logpmf(k, n, a, b), rtol=1e-10)


def test_unknown_baseline():
    with pytest.raises(ConfigError, match="unknown DQM baseline"):
        get_baseline("kolmogorov")
