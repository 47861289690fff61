"""Feature spec and extraction: layout, ordering, padding, cuts, fallbacks, bad values."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.detectors.features import extract_features
from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec, ObjectSpec
from hotline.errors import ConfigError, MissingBranchError
from tests.conftest import make_events


def test_default_spec_is_adc2021_layout():
    assert DEFAULT_SPEC.n_features == 57
    assert DEFAULT_SPEC.n_objects == 19
    labels = DEFAULT_SPEC.object_labels
    assert labels[0] == "met" and labels[1:5] == ["e1", "e2", "e3", "e4"]
    assert labels[5:9] == ["mu1", "mu2", "mu3", "mu4"] and labels[-1] == "j10"
    assert DEFAULT_SPEC.feature_names[:4] == ["met_pt", "met_eta", "met_phi", "e1_pt"]
    assert DEFAULT_SPEC.object_types == ["MET", "electrons", "muons", "jets"]


def test_spec_roundtrip_and_toml(tmp_path):
    assert FeatureSpec.from_dict(DEFAULT_SPEC.to_dict()) == DEFAULT_SPEC
    p = tmp_path / "spec.toml"
    p.write_text(
        'name = "photons"\n'
        '[[objects]]\nname = "met"\ntype = "MET"\ncollection = "MET"\nscalar = true\n'
        '[[objects]]\nname = "g"\ntype = "photons"\ncollection = "Photon"\ncount = 3\n'
    )
    spec = FeatureSpec.from_toml(p)
    assert spec.n_features == 12
    with pytest.raises(ConfigError):
        ObjectSpec("x", "x", "X", count=0)


def test_ordering_padding_cuts():
    arrays = ak.Array({
        "MET_pt": np.array([50.0, 10.0], np.float32),
        "MET_phi": np.array([1.0, -1.0], np.float32),
        "Electron_pt": [[20.0, 80.0, 2.0], []],
        "Electron_eta": [[0.1, -0.2, 0.0], []],
        "Electron_phi": [[0.5, 1.5, 0.0], []],
        "Muon_pt": [[], [30.0, 40.0, 50.0, 60.0, 70.0]],
        "Muon_eta": [[], [0.0, 2.5, 0.1, 0.2, 0.3]],  # 2.5 fails |eta|<2.1
        "Muon_phi": [[], [0.0, 0.0, 0.1, 0.2, 0.3]],
        "Jet_pt": [[10.0, 100.0], [16.0]],  # 10 fails pT>15
        "Jet_eta": [[0.0, 1.0], [-1.0]],
        "Jet_phi": [[0.0, 2.0], [3.0]],
    })
    fm = extract_features(arrays)
    assert fm.x.shape == (2, 57) and fm.x.dtype == np.float32
    obj = fm.objects()
    np.testing.assert_allclose(obj[0, 0], [50.0, 0.0, 1.0])
    np.testing.assert_allclose(obj[0, 1], [80.0, -0.2, 1.5])  # leading electron first
    np.testing.assert_allclose(obj[0, 2], [20.0, 0.1, 0.5])
    assert not fm.mask[0, 3]  # 2 GeV electron cut away, slot padded
    np.testing.assert_allclose(obj[1, 5:9, 0], [70.0, 60.0, 50.0, 30.0])
    np.testing.assert_allclose(obj[0, 9], [100.0, 1.0, 2.0])
    assert fm.mask[0].sum() == 1 + 2 + 0 + 1
    assert fm.mask[1].sum() == 1 + 0 + 4 + 1
    assert (fm.x[~np.repeat(fm.mask, 3, axis=1)] == 0).all()


def test_met_fallback_and_missing_branch():
    arrays = make_events(20)
    fields = {f: arrays[f] for f in arrays.fields if not f.startswith("MET")}
    fields["PuppiMET_pt"] = arrays["MET_pt"]
    fields["PuppiMET_phi"] = arrays["MET_phi"]
    fm = extract_features(ak.Array(fields))
    assert fm.collections["met"] == "PuppiMET"
    np.testing.assert_allclose(fm.x[:, 0], ak.to_numpy(arrays["MET_pt"]))
    del fields["Muon_eta"]
    with pytest.raises(MissingBranchError, match="Muon_eta.*muon|Muon_eta.*'mu'"):
        extract_features(ak.Array(fields), where="f.root")


def test_nan_events_are_flagged_not_zeroed_silently():
    arrays = make_events(10)
    pt = ak.to_list(arrays["Jet_pt"])
    for i in range(10):
        if pt[i]:
            pt[i][0] = float("nan")
            bad_event = i
            break
    arrays = ak.with_field(arrays, ak.Array(pt), "Jet_pt")
    met = ak.to_numpy(arrays["MET_pt"]).copy()
    met[9] = np.inf
    arrays = ak.with_field(arrays, met, "MET_pt")
    fm = extract_features(arrays)
    assert fm.bad[bad_event] and fm.bad[9]
    assert fm.bad.sum() == 2
    assert (fm.x[fm.bad] == 0).all()


@settings(max_examples=200, deadline=None)
@given(ev=st.lists(st.integers(0, 40), max_size=60),
       values=st.lists(st.sampled_from([0.0, 1.5, 2.0, 2.0, 7.25, 30.0, 1e30, float("inf"),
                                        -3.0, float("nan")]) | st.floats(0.01, 500.0),
                       min_size=60, max_size=60),
       dtype=st.sampled_from([np.float32, np.float64]), sort_events=st.booleans())
def test_event_pt_order_is_lexsort_by_event_then_leading_pt(ev, values, dtype, sort_events):
    """The fast order equals ``np.lexsort((-pt, ev))`` for any pT: positive float32 (the
    packed key), zeros, negatives, inf, NaN and float64 (two stable sorts), ties included."""
    from hotline.detectors.features import event_pt_order

    e = np.asarray(sorted(ev) if sort_events else ev, dtype=np.int64)
    pt = np.asarray(values[: e.size], dtype=dtype)
    np.testing.assert_array_equal(event_pt_order(e, pt), np.lexsort((-pt, e)))
