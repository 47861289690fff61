"""detectors.fault_kinds: event faults defined as data (TOML ``[[fault]]`` tables).

Each kind changes only the objects of its collection inside its region, keeps MET
consistent (MET + the visible objects' momentum sum is conserved, as for a particle-flow
MET), leaves events untouched at its identity size, and a bad table is one line naming
the file, the fault and the key."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.detectors.event_faults import apply_fault
from hotline.detectors.fault_kinds import fault_from_table, in_region, region_fault
from hotline.errors import ConfigError

N = 400


def toy_reco(seed: int = 3) -> ak.Array:
    """Events with 0-3 muons and 0-4 jets spread over eta and phi, plus MET."""
    rng = np.random.default_rng(seed)

    def coll(max_n: int, extra: dict[str, type]) -> dict[str, ak.Array]:
        counts = rng.integers(0, max_n + 1, N)
        k = int(counts.sum())
        out = {"pt": rng.uniform(10, 200, k), "eta": rng.uniform(-2.4, 2.4, k),
               "phi": rng.uniform(-np.pi, np.pi, k)}
        out = {f: ak.values_astype(ak.unflatten(v, counts), np.float32) for f, v in out.items()}
        for f, dt in extra.items():
            out[f] = ak.values_astype(ak.unflatten(rng.integers(-1, 2, k), counts), dt)
        return out

    mu = coll(3, {"charge": np.int32})
    jet = coll(4, {})
    jet["mass"] = ak.values_astype(jet["pt"] * 0.1, np.float32)
    fields = {f"Muon_{k}": v for k, v in mu.items()} | {f"Jet_{k}": v for k, v in jet.items()}
    fields["MET_pt"] = rng.uniform(0, 80, N).astype(np.float32)
    fields["MET_phi"] = rng.uniform(-np.pi, np.pi, N).astype(np.float32)
    return ak.Array(fields)


def balance(reco: ak.Array) -> np.ndarray:
    """MET vector plus every visible object's transverse momentum, per event."""
    x = ak.to_numpy(reco.MET_pt) * np.cos(ak.to_numpy(reco.MET_phi))
    y = ak.to_numpy(reco.MET_pt) * np.sin(ak.to_numpy(reco.MET_phi))
    for c in ("Muon", "Jet"):
        x = x + ak.to_numpy(ak.sum(reco[f"{c}_pt"] * np.cos(reco[f"{c}_phi"]), axis=1))
        y = y + ak.to_numpy(ak.sum(reco[f"{c}_pt"] * np.sin(reco[f"{c}_phi"]), axis=1))
    return np.stack([x, y], axis=1)


def fault(**kw):
    table = {"name": "f", "code": 77, "description": "test fault", **kw}
    return fault_from_table(table, "defs.toml")


def in_box(reco, coll, eta, phi):
    e, p = reco[f"{coll}_eta"], reco[f"{coll}_phi"]
    return (e > eta[0]) & (e < eta[1]) & (p > phi[0]) & (p < phi[1])


@pytest.mark.parametrize("table,size", [
    ({"kind": "scale_pt", "collection": "Muon", "eta": [1.2, 2.4]}, 3.0),
    ({"kind": "lose", "collection": "Jet", "eta": [-1.0, 1.0], "phi": [0.0, 2.0]}, 1.0),
    ({"kind": "lose", "collection": "Muon"}, 0.5),
    ({"kind": "rotate_phi", "collection": "Jet", "eta": [0.0, 2.4]}, 0.8),
    ({"kind": "fake_object", "collection": "Jet", "at": [1.5, -2.0], "rate": 0.3}, 100.0),
])
def test_every_kind_keeps_met_consistent(table, size):
    reco = toy_reco()
    f = fault(**table)
    out = f.apply(reco, np.random.default_rng(1), f.check_size(size))
    assert len(out) == len(reco)
    np.testing.assert_allclose(balance(out), balance(reco), atol=2e-2)
    coll = table["collection"]
    other = "Jet" if coll == "Muon" else "Muon"
    for f in ("pt", "eta", "phi"):
        assert ak.to_list(out[f"{other}_{f}"]) == ak.to_list(reco[f"{other}_{f}"])
    assert any(ak.to_list(out[f"{coll}_{f}"]) != ak.to_list(reco[f"{coll}_{f}"])
               for f in ("pt", "phi"))


def test_scale_pt_only_inside_its_region_and_pt_ordered():
    reco = toy_reco()
    out = apply_fault(reco, None, np.random.default_rng(0))
    assert out is reco
    f = fault(kind="scale_pt", collection="Muon", eta=[1.2, 2.4], default_size=2.0)
    out = f.apply(reco, np.random.default_rng(0), f.check_size(None))
    inside = ak.sum(in_box(reco, "Muon", (1.2, 2.4), (-4, 4)), axis=1)
    # the pT sum rises by exactly the scaled muons' pT
    gain = ak.to_numpy(ak.sum(out.Muon_pt, axis=1) - ak.sum(reco.Muon_pt, axis=1))
    expect = ak.to_numpy(ak.sum(reco.Muon_pt[in_box(reco, "Muon", (1.2, 2.4), (-4, 4))],
                                axis=1))
    np.testing.assert_allclose(gain, expect, rtol=1e-5, atol=1e-3)
    assert np.allclose(gain[ak.to_numpy(inside) == 0], 0, atol=1e-3)
    assert (gain[ak.to_numpy(inside) > 0] > 0).all()
    assert ak.all(out.Muon_pt[:, :-1] >= out.Muon_pt[:, 1:])


def test_lose_drops_whole_objects_and_a_dead_region_is_empty():
    reco = toy_reco()
    f = fault(kind="lose", collection="Jet", eta=[-1.0, 1.0], phi=[0.0, 2.0])
    out = f.apply(reco, np.random.default_rng(0), 1.0)
    assert not ak.any(in_box(out, "Jet", (-1, 1), (0, 2)))
    n_in = int(ak.sum(in_box(reco, "Jet", (-1, 1), (0, 2))))
    assert int(ak.sum(ak.num(reco.Jet_pt)) - ak.sum(ak.num(out.Jet_pt))) == n_in > 20
    assert all(len(out[c][0]) == len(out.Jet_pt[0]) for c in ("Jet_eta", "Jet_phi", "Jet_mass"))
    half = f.apply(reco, np.random.default_rng(0), 0.5)
    left = int(ak.sum(in_box(half, "Jet", (-1, 1), (0, 2))))
    assert 0.3 * n_in < left < 0.7 * n_in


def test_fake_object_fills_every_field_of_its_collection():
    reco = toy_reco()
    f = fault(kind="fake_object", collection="Muon", at=[2.0, 1.0], rate=0.5, min_pt=30.0)
    out = f.apply(reco, np.random.default_rng(2), 50.0)
    fake = (np.isclose(out.Muon_eta, 2.0)) & (np.isclose(out.Muon_phi, 1.0))
    n_fake = ak.to_numpy(ak.sum(fake, axis=1))
    assert set(np.unique(n_fake)) == {0, 1} and 0.35 < n_fake.mean() < 0.65
    assert ak.all(out.Muon_pt[fake] >= 30.0)
    assert ak.all(out.Muon_charge[fake] == 0) and out.Muon_charge.layout.content.dtype == np.int32


def test_region_fault_rotates_only_its_region_and_a_phi_range_wraps():
    """The calibration faults of the distribution studies are TOML fault kinds with a
    region (``region_fault`` builds them through the table reader)."""
    reco = toy_reco()
    f = region_fault("rotate_phi", "Jet", eta=(0.0, 2.5), phi=(0.0, np.pi / 2),
                     default_size=0.2)
    assert f.faulty_type == "jets" and "region=(0.0, 2.5, 0.0, 1.5707963267948966)" in \
        " ".join(f.definition)
    out = f.apply(reco, np.random.default_rng(0), f.check_size(None))
    before, after = ak.flatten(reco.Jet_phi).to_numpy(), ak.flatten(out.Jet_phi).to_numpy()
    eta = ak.flatten(reco.Jet_eta).to_numpy()
    moved = np.abs(after - before) > 1e-6
    assert np.allclose(after[moved] - before[moved], 0.2, atol=1e-5) and moved.sum() > 20
    assert np.array_equal(moved, (eta > 0) & (eta < 2.5) & (before > 0) & (before < np.pi / 2))
    # a phi range across +-pi holds both sides of the seam, nothing else
    phi = np.array([3.0, -3.0, -2.0, 0.0, 2.5])
    assert in_region(np.zeros(5), phi, (-1.0, 1.0, 2.8, 3.6)).tolist() == \
        [True, True, False, False, False]
    assert in_region(np.zeros(5), phi, (-1.0, 1.0, -3.6, -2.8)).tolist() == \
        [True, True, False, False, False]
    scaled = region_fault("scale_pt", "Muon", eta=(-2.4, 0.0), phi=(3.0, 3.5)).apply(
        reco, np.random.default_rng(0), 0.85)
    inside = in_region(reco.Muon_eta, reco.Muon_phi, (-2.4, 0.0, 3.0, 3.5))
    assert int(ak.sum(inside)) > 5
    np.testing.assert_allclose(ak.sum(scaled.Muon_pt, axis=1).to_numpy(),
                               ak.sum(ak.where(inside, reco.Muon_pt * 0.85, reco.Muon_pt),
                                      axis=1).to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("table,size", [
    ({"kind": "scale_pt", "collection": "Muon"}, 1.0),
    ({"kind": "lose", "collection": "Jet"}, 0.0),
    ({"kind": "rotate_phi", "collection": "Jet"}, 0.0),
])
def test_identity_sizes_leave_events_untouched(table, size):
    reco = toy_reco()
    f = fault(**table)
    assert f.apply(reco, np.random.default_rng(0), f.check_size(size)) is reco


def test_defaults_of_a_kind_and_the_definition_that_is_hashed():
    f = fault(kind="scale_pt", collection="Muon")
    assert f.faulty_type == "muons" and f.default_size == 1.3 and f.sizes == (1.3,)
    assert f.prefilter_scale(3.0) == 3.0 and "kind=scale_pt" in f.definition
    g = fault(kind="fake_object", collection="Jet", at=[1.0, 1.0], rate=0.2,
              faulty_type="MET", sizes=[10, 20])
    assert g.faulty_type == "MET" and g.sizes == (10.0, 20.0) and g.prefilter_scale(50) == 1.0
    assert g.definition != fault(kind="fake_object", collection="Jet", at=[1.0, 1.1],
                                 rate=0.2).definition


@pytest.mark.parametrize("table,message", [
    ({"kind": "melt", "collection": "Muon"}, "key 'kind' must be one of scale_pt"),
    ({"kind": "lose", "collection": "Tau"}, "key 'collection' must be one of Electron"),
    ({"kind": "lose"}, "key 'collection' is required"),
    ({"kind": "lose", "collection": "Muon", "eta": [2.0, 1.0]}, "key 'eta' must be [low, high]"),
    ({"kind": "lose", "collection": "Muon", "eta": [1.0]}, "key 'eta' must be 2 numbers"),
    ({"kind": "lose", "collection": "Muon", "default_size": 2.0},
     "key 'default_size' 2 is outside the allowed sizes of kind 'lose': 0 <= size <= 1"),
    ({"kind": "scale_pt", "collection": "Muon", "sizes": [2, -1]}, "key 'sizes' -1 is outside"),
    ({"kind": "lose", "collection": "Muon", "rate": 0.5},
     "key 'rate' is only for kind = \"fake_object\""),
    ({"kind": "fake_object", "collection": "Jet", "rate": 0.5}, "key 'at' is required"),
    ({"kind": "fake_object", "collection": "Jet", "at": [0, 0], "rate": 2},
     "key 'rate' must be in (0, 1]"),
    ({"kind": "lose", "collection": "Muon", "colour": "red"}, "unknown key 'colour'"),
    ({"kind": "lose", "collection": "Muon", "faulty_type": "gluons"},
     "key 'faulty_type' must be one of"),
    ({"kind": "lose", "collection": "Muon", "code": 0}, "key 'code' must be >= 1"),
    ({"kind": "lose", "collection": "Muon", "code": "7"}, "key 'code' must be an integer"),
    ({"kind": "lose", "collection": "Muon", "name": "Bad Name"}, "key 'name' must be a lower"),
])
def test_bad_tables_are_one_line_naming_file_fault_and_key(table, message):
    with pytest.raises(ConfigError) as exc:
        fault(**table)
    text = str(exc.value)
    assert text.startswith("defs.toml: fault '") and message in text, text
    assert "\n" not in text
