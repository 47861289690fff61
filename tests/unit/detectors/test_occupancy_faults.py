"""Fault injection: each kind changes the right cells, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.detectors.geometry import get_geometry
from hotline.detectors.occupancy import synthesize_lumis
from hotline.detectors.occupancy_faults import (
    Fault,
    available_fault_kinds,
    available_scenarios,
    get_scenario,
    inject,
)
from hotline.errors import ConfigError


@pytest.fixture(scope="module")
def barrel():
    geo = get_geometry("muon_barrel")
    return geo, synthesize_lumis(geo, 1, seed=1).counts[0].astype(np.float64)


def _changed(a, b):
    return set(np.flatnonzero(a.ravel() != b.ravel()).tolist())


def test_dead_board_zeroes_exactly_its_cells(barrel):
    geo, c = barrel
    out, (t,) = inject(c, geo, [Fault("dead_board", unit="W+1 S07")])
    cells = geo.level("sector").cells(geo.unit_number("sector", "W+1 S07"))
    assert t.level == "sector" and t.names == ("W+1 S07",)
    assert np.all(out.ravel()[cells] == 0)
    assert _changed(c, out) <= set(cells.tolist())
    assert out.sum() == c.sum() - c.ravel()[cells].sum()


def test_hot_channel_and_hv_drop_strength(barrel):
    geo, c = barrel
    out, (t,) = inject(c, geo, [Fault("hot_channel", 10, seed=4)])
    (cell,) = t.units
    assert t.level == "channel"
    assert 6 * c.ravel()[cell] < out.ravel()[cell] < 14 * c.ravel()[cell]
    assert _changed(c, out) == {cell}
    out, (t,) = inject(c, geo, [Fault("hv_drop", 0.2, seed=5)])
    cells = geo.level("sector").cells(t.units[0])
    kept = out.ravel()[cells].sum() / c.ravel()[cells].sum()
    assert 0.7 < kept < 0.9


def test_misrouted_swaps_two_units_of_one_sector(barrel):
    geo, c = barrel
    out, (t,) = inject(c, geo, [Fault("misrouted", seed=2)])
    a, b = t.units
    lv = geo.level("chamber")
    assert t.level == "chamber" and out.sum() == c.sum()
    np.testing.assert_array_equal(out.ravel()[lv.cells(a)], c.ravel()[lv.cells(b)])
    sec = geo.level("sector").index
    assert sec[lv.cells(a)[0]] == sec[lv.cells(b)[0]]


@pytest.mark.parametrize("kind", ["dead_channel", "dead_board", "hot_channel", "hv_drop",
                                  "timing_shift", "misrouted"])
def test_every_kind_is_reproducible_and_acts(kind, barrel):
    geo, c = barrel
    a, ta = inject(c, geo, [Fault(kind, seed=3)], seed=9)
    b, tb = inject(c, geo, [Fault(kind, seed=3)], seed=9)
    np.testing.assert_array_equal(a, b)
    assert ta == tb and _changed(c, a)
    other, _ = inject(c, geo, [Fault(kind, seed=4)], seed=9)
    assert not np.array_equal(a, other)


def test_scenarios_and_errors():
    assert set(available_fault_kinds()) >= {"dead_channel", "dead_board", "hot_channel",
                                            "hv_drop", "timing_shift", "misrouted"}
    assert "dead-board" in available_scenarios()
    calo = get_geometry("calo_regions")
    c = synthesize_lumis(calo, 1, seed=2).counts[0]
    out, truth = inject(c, calo, get_scenario("bad-night"))
    assert [t.kind for t in truth] == ["dead_board", "hot_channel", "hv_drop"]
    assert [t.level for t in truth] == ["card", "region", "crate"]
    with pytest.raises(ConfigError, match="unknown fault kind"):
        inject(c, calo, [Fault("gremlins")])
    with pytest.raises(ConfigError, match="unknown fault scenario"):
        get_scenario("nope")
    with pytest.raises(ConfigError, match="no card unit named"):
        inject(c, calo, [Fault("dead_board", unit="card 99.9")])
    with pytest.raises(ConfigError, match="does not fit geometry"):
        inject(np.zeros((3, 3)), calo, [Fault("dead_board")])
