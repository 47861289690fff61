"""Fast detector simulation on hand-made particle lists: efficiency, resolution,
acceptance, isolation / jet-input removal, MET balance, faults, parameters."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.detectors.event_faults import (
    DEAD_CALO_BOX,
    HOT_CELL_ETA,
    HOT_CELL_PHI,
    MUON_SCALE,
    apply_fault,
    available_event_faults,
)
from hotline.detectors.fastsim import FastSimParams, simulate, single_lepton_mask
from hotline.errors import ConfigError


def particles(events: list[list[tuple[int, float, float, float]]]) -> ak.Array:
    """Final-state records from per-event lists of (pdg id, pt, eta, phi), massless."""
    counts = [len(e) for e in events]
    flat = np.array([p for e in events for p in e], dtype=float).reshape(-1, 4)
    pid, pt, eta, phi = flat.T
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    rec = ak.zip({"id": pid.astype(np.int32), "px": px, "py": py, "pz": pz,
                  "E": pt * np.cosh(eta), "pt": pt, "eta": eta, "phi": phi})
    return ak.unflatten(rec, counts)


def repeat(event: list[tuple[int, float, float, float]], n: int) -> ak.Array:
    return particles([event] * n)


def spray(pt: float, eta: float, phi: float, k: int = 8) -> list[tuple[int, float, float, float]]:
    """k charged pions sharing ``pt`` within Delta R < 0.1 (a jet)."""
    return [(211, pt / k, eta + 0.02 * (i % 3 - 1), phi + 0.02 * (i // 3 - 1)) for i in range(k)]


P = FastSimParams.from_toml()


def test_muon_efficiency_matches_plateau():
    n = 20000
    reco = simulate(repeat([(13, 50.0, 0.5, 0.3)], n), P, np.random.default_rng(1))
    eff = float(np.mean(ak.num(reco.Muon_pt) == 1))
    sigma = np.sqrt(P.muon.eff_barrel * (1 - P.muon.eff_barrel) / n)
    assert abs(eff - P.muon.eff_barrel) < 5 * sigma


def test_electron_resolution_and_endcap_efficiency():
    n = 20000
    eta = 2.0
    reco = simulate(repeat([(11, 50.0, eta, 1.0)], n), P, np.random.default_rng(2))
    found = ak.num(reco.Electron_pt) == 1
    eff = float(np.mean(found))
    assert abs(eff - P.electron.eff_endcap) < 5 * np.sqrt(0.85 * 0.15 / n)
    ratio = ak.to_numpy(ak.flatten(reco.Electron_pt)) / 50.0
    e = 50.0 * np.cosh(eta)
    expected = np.hypot(P.electron.res_stochastic / np.sqrt(e), P.electron.res_constant)
    assert abs(np.mean(ratio) - 1.0) < 0.002
    assert abs(np.std(ratio) / expected - 1.0) < 0.05


def test_acceptance_and_thresholds():
    ev = [(13, 50.0, 2.6, 0.0), (11, 50.0, 2.7, 1.0), (22, 5.0, 0.0, 2.0), (13, 2.0, 0.0, -1.0)]
    reco = simulate(repeat(ev, 200), P, np.random.default_rng(3))
    assert ak.sum(ak.num(reco.Muon_pt)) == 0
    assert ak.sum(ak.num(reco.Electron_pt)) == 0
    assert ak.sum(ak.num(reco.Photon_pt)) == 0


def test_isolated_leptons_are_not_jets_but_hadrons_are():
    # isolated 60 GeV electron at phi=0, 60 GeV hadronic jet at phi=pi
    ev = [(11, 60.0, 0.2, 0.0), *spray(60.0, -0.3, np.pi - 0.05)]
    reco = simulate(repeat(ev, 500), P, np.random.default_rng(4))
    has_e = ak.num(reco.Electron_pt) == 1
    assert np.mean(has_e) > 0.9
    jphi = reco.Jet_phi[has_e]
    near_e = ak.any(abs(np.arctan2(np.sin(jphi), np.cos(jphi))) < 0.4, axis=1)
    assert not ak.any(near_e)  # the electron is not clustered into a jet
    assert np.mean(ak.num(reco.Jet_pt) >= 1) > 0.98  # the hadrons are


def test_nonisolated_muon_stays_in_jet():
    ev = [(13, 20.0, 0.0, 0.0), *spray(40.0, 0.0, 0.05)]
    reco = simulate(repeat(ev, 300), P, np.random.default_rng(5))
    iso = ak.flatten(reco.Muon_pfRelIso03_all)
    assert ak.all(iso > P.muon.iso_max)  # reconstructed, flagged non-isolated
    jet_pt = ak.to_numpy(ak.fill_none(ak.firsts(reco.Jet_pt), 0.0))
    assert np.median(jet_pt) > 50  # the jet contains the muon (20) and the hadrons (40)


def test_met_balances_visible_recoil():
    # W-like: electron 40 GeV at phi 0, neutrino 40 GeV at phi pi
    ev = [(11, 40.0, 0.0, 0.0), (12, 40.0, 0.3, np.pi)]
    reco = simulate(repeat(ev, 2000), P, np.random.default_rng(6))
    met, phi = ak.to_numpy(reco.MET_pt), ak.to_numpy(reco.MET_phi)
    assert abs(np.median(met) - 40.0) < 3.0
    assert np.median(np.abs(np.cos(phi) + 1)) < 0.05  # points to the neutrino
    # balanced dijet: MET is resolution only
    bal = simulate(repeat([*spray(50, 0.5, 0.0), *spray(50, -0.5, np.pi)], 2000), P,
                   np.random.default_rng(7))
    assert np.median(ak.to_numpy(bal.MET_pt)) < 15.0


def test_single_lepton_filter_and_prefilter_margin():
    reco = simulate(repeat([(11, 19.0, 0.0, 0.0)], 20000), P, np.random.default_rng(8))
    # nothing generated below the 19 GeV pre-filter can pass the 23 GeV trigger
    assert not single_lepton_mask(reco, P).any()
    reco = simulate(repeat([(13, 40.0, 0.0, 0.0)], 1000), P, np.random.default_rng(9))
    assert abs(single_lepton_mask(reco, P).mean() - P.muon.eff_barrel) < 0.03


def test_pileup_adds_soft_activity():
    ev = [(13, 40.0, 0.0, 0.0)]
    quiet = simulate(repeat(ev, 200), P, np.random.default_rng(10))
    busy = simulate(repeat(ev, 200), P.with_pileup(30), np.random.default_rng(10))
    assert np.mean(ak.num(busy.Jet_pt)) > np.mean(ak.num(quiet.Jet_pt))
    assert np.median(ak.to_numpy(busy.MET_pt)) > np.median(ak.to_numpy(quiet.MET_pt))


def base_events(n: int = 400) -> ak.Array:
    ev = [(13, 40.0, 0.8, 1.0), (13, 35.0, -1.5, -2.0), (11, 50.0, -0.8, -1.7),
          *spray(80.0, -0.7, -1.8), *spray(60.0, 2.0, 0.5)]
    return simulate(repeat(ev, n), P, np.random.default_rng(11))


def test_muon_scale_fault_only_in_its_region():
    reco = base_events()
    bad = apply_fault(reco, "muon_scale", np.random.default_rng(0))
    inside = (reco.Muon_eta > 0.3) & (reco.Muon_eta < 1.2)
    old_in = ak.to_numpy(ak.flatten(reco.Muon_pt[inside]))
    new_in = ak.to_numpy(ak.flatten(bad.Muon_pt[(bad.Muon_eta > 0.3) & (bad.Muon_eta < 1.2)]))
    np.testing.assert_allclose(np.sort(new_in), np.sort(old_in * MUON_SCALE), rtol=1e-5)
    out_old = np.sort(ak.to_numpy(ak.flatten(reco.Muon_pt[~inside])))
    out_new = np.sort(ak.to_numpy(ak.flatten(bad.Muon_pt[bad.Muon_eta < 0])))
    np.testing.assert_allclose(out_new, out_old)
    # MET moves by minus the extra muon momentum (particle-flow MET sees the wrong pT)
    def vec(r):
        m, f = ak.to_numpy(r.MET_pt).astype(float), ak.to_numpy(r.MET_phi).astype(float)
        return m * np.cos(f), m * np.sin(f)

    (x0, y0), (x1, y1) = vec(reco), vec(bad)
    mu_pt = ak.to_numpy(ak.sum(reco.Muon_pt[inside], axis=1))
    mu_phi = ak.to_numpy(ak.fill_none(ak.firsts(reco.Muon_phi[inside]), 0.0))
    extra = (MUON_SCALE - 1) * mu_pt
    np.testing.assert_allclose(x1 - x0, -extra * np.cos(mu_phi), atol=1e-3)
    np.testing.assert_allclose(y1 - y0, -extra * np.sin(mu_phi), atol=1e-3)
    assert extra.mean() > 5


def test_dead_calo_removes_jets_and_raises_met():
    reco = base_events()
    bad = apply_fault(reco, "dead_calo", np.random.default_rng(0))
    e0, e1, p0, p1 = DEAD_CALO_BOX
    box = (bad.Jet_eta > e0) & (bad.Jet_eta < e1) & (bad.Jet_phi > p0) & (bad.Jet_phi < p1)
    assert not ak.any(box)
    assert ak.sum(ak.num(bad.Jet_pt)) < ak.sum(ak.num(reco.Jet_pt))
    # the lost jets and electrons reappear as MET
    def vec(r):
        m, f = ak.to_numpy(r.MET_pt).astype(float), ak.to_numpy(r.MET_phi).astype(float)
        return m * np.cos(f), m * np.sin(f)

    def lost(pt, eta, phi):
        box = (eta > e0) & (eta < e1) & (phi > p0) & (phi < p1)
        return (ak.to_numpy(ak.sum((pt * np.cos(phi))[box], axis=1)),
                ak.to_numpy(ak.sum((pt * np.sin(phi))[box], axis=1)))

    jx, jy = lost(reco.Jet_pt, reco.Jet_eta, reco.Jet_phi)
    ex, ey = lost(reco.Electron_pt, reco.Electron_eta, reco.Electron_phi)
    (x0, y0), (x1, y1) = vec(reco), vec(bad)
    np.testing.assert_allclose(x1 - x0, jx + ex, atol=1e-3)
    np.testing.assert_allclose(y1 - y0, jy + ey, atol=1e-3)
    assert np.mean(np.hypot(jx + ex, jy + ey)) > 50


def test_hot_cell_adds_fake_jets_at_its_position():
    reco = base_events(1000)
    bad = apply_fault(reco, "hot_cell", np.random.default_rng(0))
    at = (abs(bad.Jet_eta - HOT_CELL_ETA) < 1e-4) & (abs(bad.Jet_phi - HOT_CELL_PHI) < 1e-4)
    frac = float(np.mean(ak.any(at, axis=1)))
    assert 0.35 < frac < 0.45
    assert ak.all(bad.Jet_pt[:, :-1] >= bad.Jet_pt[:, 1:])  # still pT ordered


def test_electron_phi_fault_rotates_phi_only():
    reco = base_events()
    bad = apply_fault(reco, "electron_phi", np.random.default_rng(0))
    d = ak.to_numpy(ak.flatten(bad.Electron_phi - reco.Electron_phi))
    np.testing.assert_allclose(np.cos(d), np.cos(0.6), atol=1e-5)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(bad.Electron_pt)),
                                  ak.to_numpy(ak.flatten(reco.Electron_pt)))
    assert set(available_event_faults()) >= {"muon_scale", "dead_calo", "hot_cell",
                                             "electron_phi"}


def test_params_round_trip_and_errors(tmp_path):
    assert FastSimParams.from_dict(P.to_dict()) == P
    assert P == FastSimParams()  # the TOML file documents exactly the dataclass defaults
    bad = tmp_path / "p.toml"
    bad.write_text("[muon]\nres_constnt = 0.02\n")
    with pytest.raises(ConfigError, match="res_constnt"):
        FastSimParams.from_toml(bad)
    with pytest.raises(ConfigError, match="unknown detector fault"):
        apply_fault(base_events(2), "no_such_fault", np.random.default_rng(0))


def test_empty_batch_keeps_types():
    empty = particles([[(211, 1.0, 0.0, 0.0)]])[:0]
    reco = simulate(empty, P, np.random.default_rng(0))
    assert len(reco) == 0 and str(reco.type.content.fields) and "float32" in str(reco.Jet_eta.type)
