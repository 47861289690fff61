"""detectors.fastsim event faults with a strength ``size``: defaults, identities, validation."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.detectors.event_faults import (
    DEAD_CALO_BOX,
    HOT_CELL_ETA,
    HOT_CELL_MIN_PT,
    apply_fault,
    available_event_faults,
    get_event_fault,
)
from hotline.detectors.spec import DEFAULT_SPEC
from hotline.errors import ConfigError


def toy_reco(jet_phi: list[float], jet_eta: float = -0.5) -> ak.Array:
    """Hand-made reco events: one jet each at ``jet_phi``, an electron, a barrel muon, MET."""
    n = len(jet_phi)

    def jag(v, dtype=np.float32):
        return ak.values_astype(ak.Array([[x] for x in v]), dtype)

    return ak.Array({
        "Electron_pt": jag([40.0] * n), "Electron_eta": jag([0.5] * n),
        "Electron_phi": jag([0.2] * n), "Electron_charge": jag([-1] * n, np.int32),
        "Electron_pfRelIso03_all": jag([0.01] * n),
        "Muon_pt": jag([30.0] * n), "Muon_eta": jag([0.8] * n), "Muon_phi": jag([1.0] * n),
        "Muon_charge": jag([1] * n, np.int32), "Muon_pfRelIso03_all": jag([0.01] * n),
        "Jet_pt": jag([50.0] * n), "Jet_eta": jag([jet_eta] * n), "Jet_phi": jag(jet_phi),
        "Jet_mass": jag([5.0] * n),
        "MET_pt": np.full(n, 20.0, np.float32), "MET_phi": np.zeros(n, np.float32),
    })


def test_every_fault_names_a_model_type_and_valid_sizes():
    assert set(available_event_faults()) >= {"muon_scale", "dead_calo", "hot_cell",
                                             "electron_phi"}
    for name in available_event_faults():
        f = get_event_fault(name)
        assert f.faulty_type in DEFAULT_SPEC.object_types
        assert f.sizes and f.size_help
        assert f.check_size(None) == f.default_size


def test_default_size_is_what_apply_fault_does_without_a_size():
    reco = toy_reco(list(np.linspace(-3, 3, 50)))
    for name in available_event_faults():
        a = apply_fault(reco, name, np.random.default_rng(5))
        b = apply_fault(reco, name, np.random.default_rng(5), get_event_fault(name).default_size)
        assert ak.to_list(a) == ak.to_list(b), name
    assert get_event_fault("dead_calo").default_size == pytest.approx(1.5)
    assert get_event_fault("muon_scale").prefilter_scale(3.0) == 3.0


@pytest.mark.parametrize("name,size", [("muon_scale", 1.0), ("electron_phi", 0.0),
                                       ("dead_calo", 0.0)])
def test_identity_sizes_leave_events_untouched(name, size):
    reco = toy_reco([-2.0, -1.5, 0.3])
    assert ak.to_list(apply_fault(reco, name, np.random.default_rng(0), size)) == \
        ak.to_list(reco)


def test_sizes_act_as_documented():
    reco = toy_reco([-2.0, -0.5, 1.0, 3.0, -3.0, -2.6])
    rng = np.random.default_rng(0)
    mu = apply_fault(reco, "muon_scale", rng, 2.5)  # the muon (eta 0.8, phi 1.0) is in the box
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(mu.Muon_pt)), 75.0)
    ph = apply_fault(reco, "electron_phi", rng, -0.3)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ph.Electron_phi)), -0.1, atol=1e-6)
    # dead region from phi -2.5, width 3 rad: phi -2.0 and -0.5 die, 1.0, 3.0, -3.0, -2.6 live
    dead = apply_fault(reco, "dead_calo", rng, 3.0)
    assert ak.to_list(ak.num(dead.Jet_pt)) == [0, 0, 1, 1, 1, 1]
    # width 6 rad wraps around +-pi: up to -2.5 + 6 - 2 pi = -0.78, so -3.0 dies, -2.6 lives
    ring = apply_fault(reco, "dead_calo", rng, 6.0)
    assert ak.to_list(ak.num(ring.Jet_pt)) == [0, 0, 0, 0, 0, 1]
    assert DEAD_CALO_BOX[0] < -0.5 < DEAD_CALO_BOX[1]


def test_hot_cell_sizes_share_their_random_numbers():
    reco = toy_reco([0.0] * 2000)

    def fake_pt(size):
        r = apply_fault(reco, "hot_cell", np.random.default_rng(9), size)
        at = abs(r.Jet_eta - HOT_CELL_ETA) < 1e-4
        return ak.to_numpy(ak.flatten(r.Jet_pt[at])).astype(float)

    a, b = fake_pt(60.0), fake_pt(120.0)
    assert 0.35 < len(a) / 2000 < 0.45  # the rate does not depend on the size
    np.testing.assert_allclose(b - HOT_CELL_MIN_PT, 2 * (a - HOT_CELL_MIN_PT), rtol=1e-5)
    assert np.mean(a) == pytest.approx(HOT_CELL_MIN_PT + 60, rel=0.1)


@pytest.mark.parametrize("name,size", [("muon_scale", -1.0), ("muon_scale", 0.0),
                                       ("electron_phi", 4.0), ("dead_calo", 7.0),
                                       ("hot_cell", -5.0), ("hot_cell", float("nan"))])
def test_bad_sizes_are_refused_naming_fault_and_size(name, size):
    with pytest.raises(ConfigError, match=rf"'{name}'.*size {size!r}"):
        apply_fault(toy_reco([0.0]), name, np.random.default_rng(0), size)


def test_generate_request_checks_the_fault_size(tmp_path):
    from hotline.training.generate import GenerateRequest

    GenerateRequest("sm_mix_muon_scale", 10, 1, tmp_path / "run_000900",
                    fault_size=2.0).check_fault_size()
    with pytest.raises(ConfigError, match="no detector fault"):
        GenerateRequest("sm_mix", 10, 1, tmp_path / "run_000901",
                        fault_size=2.0).check_fault_size()
    with pytest.raises(ConfigError, match="muon_scale.*-2"):
        GenerateRequest("sm_mix_muon_scale", 10, 1, tmp_path / "run_000902",
                        fault_size=-2.0).check_fault_size()
