"""The fast numpy reads of a chunk's branches equal awkward's, on every layout: packed
(uproot, Arrow), sliced, selected (ListArray), with options; the arithmetic bin codes of
equal-width axes equal the binary search's, edges, flows and NaN included."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.alerts.rules import CountRule
from hotline.detectors.columns import flat, plain_values, scalar
from hotline.detectors.event_histograms import DEFAULT_BOOK, Axis
from hotline.detectors.quality import check_events
from tests.conftest import make_events

SETTINGS = dict(deadline=None, derandomize=True, database=None, max_examples=150)


def _awkward_flat(arr: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    return (ak.to_numpy(ak.flatten(arr, axis=1)),
            ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64))


def _layouts(events: ak.Array) -> dict[str, ak.Array]:
    """The same events in the layouts a pipeline meets."""
    keep = np.arange(len(events)) % 3 != 1
    return {"packed": events, "range": events[7:150], "selected": events[keep],
            "reordered": events[np.arange(len(events))[::-1]],
            "from_arrow": ak.from_arrow(ak.to_arrow_table(events[:120]))}


@pytest.mark.parametrize("layout", ["packed", "range", "selected", "reordered", "from_arrow"])
def test_flat_and_scalar_equal_awkward_on_every_layout(layout):
    arrays = _layouts(make_events(300, seed=4))[layout]
    for name in ("Jet_pt", "Muon_eta", "Electron_phi"):
        values, counts = flat(arrays, name)
        want_values, want_counts = _awkward_flat(arrays[name])
        np.testing.assert_array_equal(values, want_values)
        np.testing.assert_array_equal(counts, want_counts)
        assert counts.dtype == np.int64
    np.testing.assert_array_equal(scalar(arrays, "MET_pt"), ak.to_numpy(arrays["MET_pt"]))


def test_option_types_and_mappings_take_awkward():
    jagged = ak.Array([[1.0, None], [], [3.0]])
    arrays = ak.zip({"Jet_pt": jagged, "MET_pt": ak.Array([1.0, None, 2.0])}, depth_limit=1)
    assert plain_values(arrays, "Jet_pt") is None and plain_values(arrays, "MET_pt") is None
    values, counts = flat(arrays, "Jet_pt")
    assert counts.tolist() == [2, 0, 1] and values.tolist()[::2] == [1.0, 3.0]
    mapping = {"MET_pt": np.array([4.0, 5.0]), "Jet_pt": ak.Array([[1.0], [2.0, 3.0]])}
    assert scalar(mapping, "MET_pt").tolist() == [4.0, 5.0]
    assert flat(mapping, "Jet_pt")[1].tolist() == [1, 2]
    assert plain_values(mapping, "MET_pt") is None


def test_quarantine_and_count_rules_agree_with_the_awkward_path():
    """A bad value in a packed and in a selected layout names the same events."""
    events = make_events(200, seed=6)
    pt = ak.to_numpy(ak.flatten(events["Jet_pt"])).copy()
    pt[[3, 40]] = [np.nan, -5.0]
    events = ak.with_field(events, ak.unflatten(pt, ak.num(events["Jet_pt"])), "Jet_pt")
    packed = check_events(events, ["Jet_pt"])
    as_options = check_events(ak.with_field(events, ak.mask(events["Jet_pt"], np.ones(
        200, bool)), "Jet_pt"), ["Jet_pt"])
    assert plain_values(events, "Jet_pt") is not None
    np.testing.assert_array_equal(packed.bad, as_options.bad)
    assert sorted(p.reason for p in packed.problems) == sorted(
        p.reason for p in as_options.problems)
    rule = CountRule("2jet", "Jet", min_pt=40.0, min_count=2, max_abs_eta=2.4)
    for arrays in _layouts(make_events(300, seed=8)).values():
        sel = (arrays["Jet_pt"] > 40.0) & (abs(arrays["Jet_eta"]) < 2.4)
        want = ak.to_numpy(ak.sum(sel, axis=1)) >= 2
        out = rule.evaluate(arrays, {})
        np.testing.assert_array_equal(out.mask, want)
        idx = np.flatnonzero(want)[:10]
        pos, vals = out.objects(idx)
        assert vals.shape[1] == 3 and np.all(vals[:, 0] > 40.0)
        assert set(pos.tolist()) == set(range(idx.size))


_AXES = [DEFAULT_BOOK.met, DEFAULT_BOOK.met_phi, DEFAULT_BOOK.ht,
         *[a for o in DEFAULT_BOOK.objects for a in (o.n, o.pt, o.eta, o.phi)],
         Axis.regular("r", 9, -1.0, 2.0), Axis.geometric("g", 11, 0.5, 700.0),
         Axis.integer("i", 20), Axis("v", (0.0, 1.0, 5.0, 6.0))]


@settings(**SETTINGS)
@given(k=st.integers(0, len(_AXES) - 1), seed=st.integers(0, 2**32 - 1),
       extra=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=30))
def test_bin_codes_equal_the_binary_search(k, seed, extra):
    axis = _AXES[k]
    e = np.asarray(axis.edges)
    rng = np.random.default_rng(seed)
    span = e[-1] - e[0]
    values = np.concatenate([
        rng.uniform(e[0] - 0.2 * span, e[-1] + 0.2 * span, 600),
        e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf), e.astype(np.float32),
        [np.nan, np.inf, -np.inf, 0.0, -0.0], extra])
    want = np.searchsorted(e, values, side="right").astype(np.uint8)
    np.testing.assert_array_equal(axis.index(values), want)
