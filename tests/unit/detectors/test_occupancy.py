"""Occupancy maps from event batches and from the generative model."""

from __future__ import annotations

import awkward as ak
import numpy as np

from hotline.detectors.geometry import get_geometry
from hotline.detectors.occupancy import HitModel, OccupancyMap, accumulate, synthesize_lumis
from hotline.stream.batch import EventBatch
from tests.conftest import make_events


def test_calo_hits_are_the_objects_inside_the_grid():
    arrays = make_events(300, seed=4, run=5, events_per_lumi=100)
    calo = get_geometry("calo_regions")
    maps = accumulate(EventBatch(arrays), [calo], HitModel(pileup=0.0, noise_scale=0.0))
    assert sorted(k[2] for k in maps) == [1, 2, 3]
    total = sum(m.counts.sum() for m in maps.values())
    inside = sum(int(ak.sum(abs(arrays[f"{c}_eta"]) < 3.0))
                 for c in ("Jet", "Electron", "Photon"))
    assert total == inside
    m = maps[("hotline", 5, 2, "calo_regions")]
    assert m.n_events == 100 and m.counts.shape == (18, 14)
    np.testing.assert_allclose(m.normalised, m.counts / 100)


def test_maps_are_reproducible_and_merge():
    arrays = make_events(400, seed=2, run=3, events_per_lumi=400)
    geos = [get_geometry("muon_barrel"), get_geometry("calo_regions")]
    a = accumulate(EventBatch(arrays), geos)
    b = accumulate(EventBatch(arrays), geos)
    for k in a:
        np.testing.assert_array_equal(a[k].counts, b[k].counts)
    # two halves of the lumisection merge into one map with all events
    h1 = accumulate(EventBatch(arrays[:150]), geos)
    h2 = accumulate(EventBatch(arrays[150:]), geos)
    key = ("hotline", 3, 1, "muon_barrel")
    merged = h1[key] + h2[key]
    assert merged.n_events == 400
    # pileup + noise expectation is ~0.8 hits per event in the barrel: the totals agree
    assert abs(merged.counts.sum() - a[key].counts.sum()) < 0.25 * a[key].counts.sum()
    again = OccupancyMap.from_dict(merged.to_dict())
    np.testing.assert_array_equal(again.counts, merged.counts)


def test_pileup_branch_is_used():
    arrays = make_events(200, seed=1, run=1, events_per_lumi=200)
    with_pu = ak.with_field(arrays, np.full(200, 80.0, np.float32), "Pileup_nTrueInt")
    geo = [get_geometry("calo_regions")]
    lo = accumulate(EventBatch(arrays), geo, HitModel(pileup=0.0))
    hi = accumulate(EventBatch(with_pu), geo, HitModel(pileup=0.0))
    k = ("hotline", 1, 1, "calo_regions")
    assert hi[k].pileup == 80.0
    # 80 vertices x 0.06 deposits x 200 events = 960 extra deposits expected
    assert 700 < hi[k].counts.sum() - lo[k].counts.sum() < 1250


def test_synthetic_lumis_vary_with_luminosity_and_pileup():
    geo = get_geometry("muon_barrel")
    ls = synthesize_lumis(geo, 200, seed=3, events_per_lumi=10_000)
    assert ls.counts.shape == (200, 20, 48)
    assert ls.n_events.min() >= 7000 and ls.n_events.max() <= 13000
    per_event = ls.counts.sum(axis=(1, 2)) / ls.n_events
    # more pileup, more hits per event
    assert np.corrcoef(ls.pileup, per_event)[0, 1] > 0.8
    again = synthesize_lumis(geo, 200, seed=3, events_per_lumi=10_000)
    np.testing.assert_array_equal(again.counts, ls.counts)
    m = ls.maps()[5]
    assert m.lumi == 6 and m.subsystem == "muon_barrel"
