"""Detector geometries: cells map to named hardware units; positions map to cells."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.detectors.geometry import Geometry, available_geometries, get_geometry
from hotline.errors import ConfigError


def test_builtin_geometries_and_unit_counts():
    assert {"muon_barrel", "calo_regions"} <= set(available_geometries())
    mb = get_geometry("muon_barrel")
    assert mb.shape == (20, 48)
    assert {lv: mb.levels[lv].n_units for lv in mb.levels} == {
        "channel": 960, "chamber": 240, "sector": 60, "wheel": 5}
    calo = get_geometry("calo_regions")
    assert calo.shape == (18, 14)
    assert calo.level("board").name == "card" and calo.level("sector").n_units == 18


@pytest.mark.parametrize("name", ["muon_barrel", "calo_regions"])
def test_every_cell_in_exactly_one_unit_per_level(name):
    geo = get_geometry(name)
    mat, ncell, labels = geo.membership
    assert mat.shape == (geo.n_cells, len(labels))
    assert np.all(mat.sum(axis=1) == len(geo.levels))  # one unit per level
    assert ncell.min() >= 1
    for lv in geo.levels.values():
        assert len(set(lv.names)) == lv.n_units  # names are unique


def test_muon_names_follow_the_image_layout():
    geo = get_geometry("muon_barrel")
    # row 5 = wheel W-1, station MB2; column 26 = sector S07, channel 3
    cell = 5 * 48 + 26
    assert geo.unit_name("channel", geo.level("channel").index[cell]) == "W-1 S07 MB2 ch3"
    assert geo.unit_name("chamber", geo.level("chamber").index[cell]) == "W-1 S07 MB2"
    assert geo.unit_name("board", geo.level("board").index[cell]) == "W-1 S07"
    chamber = geo.unit_number("hv", "W+2 S12 MB4")
    assert len(geo.level("hv").cells(chamber)) == 4


def test_locate_positions():
    mb = get_geometry("muon_barrel")
    eta = np.array([0.0, 1.0, -1.0, 2.0])
    phi = np.array([0.01, 0.01, -np.pi + 0.01, 0.0])
    cells = mb.locate(eta, phi, np.array([0, 3, 1, 0]))
    assert cells[3] == -1  # outside the barrel
    names = [mb.unit_name("channel", c) for c in cells[:3]]
    assert names == ["W0 S07 MB1 ch1", "W+2 S07 MB4 ch1", "W-2 S01 MB2 ch1"]
    calo = get_geometry("calo_regions")
    c = calo.locate(np.array([-2.99, 2.99, 3.5]), np.array([np.pi - 1e-3, -np.pi, 0.0]))
    assert c.tolist() == [17 * 14 + 0, 0 * 14 + 13, -1]


def test_bad_geometry_files(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('name = "x"\nlayout = "nope"\n')
    with pytest.raises(ConfigError, match="unknown geometry layout 'nope'"):
        Geometry.from_toml(p)
    p.write_text('name = "x"\nlayout = "eta_phi_grid"\n[layout_params]\nphi_bins = 18\n')
    with pytest.raises(ConfigError, match="bad \\[layout_params\\]"):
        Geometry.from_toml(p)
    with pytest.raises(ConfigError, match="unknown detector geometry"):
        get_geometry("pixel_layer_9")
    with pytest.raises(ConfigError, match="no unit level or role"):
        get_geometry("muon_barrel").level("crate")


def test_geometry_round_trips_as_data():
    geo = get_geometry("calo_regions")
    again = Geometry.from_dict(geo.to_dict())
    assert again.shape == geo.shape and again.level("hv").names == geo.level("hv").names
