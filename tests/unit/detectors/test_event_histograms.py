"""Per-lumisection histograms: filling against an independent histogram of the raw values,
per-event codes (take / concat), wire forms and their refusals, boost-histogram export,
and the regional calibration faults."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest

from hotline.detectors.event_histograms import (
    DEFAULT_BOOK,
    NO_CODE,
    EventBins,
    LumiHists,
    book_for,
    fill_event_bins,
)
from hotline.errors import StreamError
from tests.conftest import make_events

BOOK = DEFAULT_BOOK


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return make_events(3000, seed=4)


def flat(a: ak.Array, branch: str) -> np.ndarray:
    return ak.to_numpy(ak.flatten(a[branch])).astype(np.float64)


def counts_of(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Independent histogram with flows (np.histogram plus the out-of-range counts)."""
    inner, _ = np.histogram(values, bins=np.asarray(edges))
    # np.histogram closes the last bin on the right; the book's bins are half-open
    at_edge = int(np.sum(values == edges[-1]))
    inner[-1] -= at_edge
    return np.r_[np.sum(values < edges[0]), inner, np.sum(values >= edges[-1])]


def test_fill_matches_an_independent_histogram(events: ak.Array) -> None:
    h = fill_event_bins(events, BOOK).hists()
    mu = BOOK.object_axes("muons")
    assert mu is not None
    assert np.array_equal(h.counts["muons/pt"], counts_of(flat(events, "Muon_pt"), mu.pt.edges))
    assert np.array_equal(h.counts["muons/eta"], counts_of(flat(events, "Muon_eta"),
                                                           mu.eta.edges))
    n_mu = ak.to_numpy(ak.num(events["Muon_pt"]))
    assert np.array_equal(h.counts["muons/n"], counts_of(n_mu.astype(float), mu.n.edges))
    met = ak.to_numpy(events["MET_pt"]).astype(np.float64)
    assert np.array_equal(h.counts["met/pt"], counts_of(met, BOOK.met.edges))
    jpt, jeta = ak.Array(events["Jet_pt"]), ak.Array(events["Jet_eta"])
    ht = ak.to_numpy(ak.sum(jpt[(jpt > 30) & (abs(jeta) < 2.5)], axis=1)).astype(np.float64)
    assert np.array_equal(h.counts["ht"], counts_of(ht, BOOK.ht.edges))
    # the 2D maps are the same objects: their marginals are the 1D histograms
    et = h.counts["muons/etaphi"].reshape(mu.eta.size, mu.phi.size)
    assert np.array_equal(et.sum(1), h.counts["muons/eta"])
    assert np.array_equal(et.sum(0), h.counts["muons/phi"])
    pr = h.counts["muons/pt_region"].reshape(mu.n_regions, mu.pt.size)
    assert np.array_equal(pr.sum(0), h.counts["muons/pt"])
    assert h.total("photons/pt") == len(flat(events, "Photon_pt"))


def test_quarantined_events_and_absent_collections_are_not_filled(events: ak.Array) -> None:
    bad = np.zeros(len(events), bool)
    bad[::3] = True
    bins = fill_event_bins(events, BOOK, bad)
    assert np.all(bins.scalars["met/pt"][bad] == NO_CODE)
    assert np.all(bins.counts["jets"][bad] == NO_CODE)
    h = bins.hists()
    assert h.total("met/pt") == int((~bad).sum())
    assert h.total("jets/pt") == int(ak.sum(ak.num(events["Jet_pt"])[~bad]))
    no_photons = events[[f for f in events.fields if not f.startswith("Photon_")]]
    h2 = fill_event_bins(no_photons, BOOK).hists()
    assert "photons/pt" not in h2.counts and "muons/pt" in h2.counts


def test_take_and_concat_keep_each_events_objects(events: ak.Array) -> None:
    bins = fill_event_bins(events, BOOK)
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(events))[:700]
    direct = fill_event_bins(events[idx], BOOK)
    taken = bins.take(idx)
    assert taken.hists() == direct.hists()
    for t in taken.counts:
        assert np.array_equal(taken.objects[t], direct.objects[t])
    a, b = bins.take(np.arange(0, 1000)), bins.take(np.arange(1000, 3000))
    assert a.concat(b).hists() == bins.hists()
    # a side without histograms (an older writer) is not filled: it adds nothing
    assert a.concat(EventBins.empty(BOOK, 50)).hists() == a.hists()


def test_event_bins_wire_roundtrip_and_refusals(events: ak.Array) -> None:
    bins = fill_event_bins(events[:200], BOOK)
    wire = json.loads(json.dumps(bins.to_wire()))
    back = EventBins.from_wire(wire, 200)
    assert back.hists() == bins.hists()
    with pytest.raises(StreamError, match="bins are for 200 events, the tally has 199"):
        EventBins.from_wire(wire, 199)
    bad = dict(wire, book="other-00000000")
    with pytest.raises(StreamError, match="histogram book 'other-00000000' is unknown"):
        EventBins.from_wire(bad, 200)
    mu = dict(wire["objects"])
    mu["muons"] = "!!"
    with pytest.raises(StreamError, match="objects of 'muons' is not valid base64"):
        EventBins.from_wire(dict(wire, objects=mu), 200)
    codes = bins.scalars["met/pt"].copy()
    codes[0] = 200  # beyond the MET axis
    import base64

    sc = dict(wire["scalars"], **{"met/pt": base64.b64encode(codes.tobytes()).decode()})
    with pytest.raises(StreamError, match="bins of 'met/pt' exceed its 34 bins"):
        EventBins.from_wire(dict(wire, scalars=sc), 200)


def test_lumi_hists_wire_is_compact_and_exact(events: ak.Array) -> None:
    h = fill_event_bins(events, BOOK).hists()
    text = json.dumps(h.to_wire())
    assert LumiHists.from_wire(json.loads(text)) == h
    bins = sum(v.size for v in h.counts.values())
    assert len(text) < 2 * bins  # zlib of mostly-zero int64 counts: < 2 bytes per bin
    d = json.loads(text)
    with pytest.raises(StreamError, match="holds .* counts, the sizes say"):
        LumiHists.from_wire(dict(d, sizes=[s + 1 for s in d["sizes"]]))
    with pytest.raises(StreamError, match="not base64 of zlib data"):
        LumiHists.from_wire(dict(d, data="AAAA"))
    with pytest.raises(ValueError, match="cannot add histograms of book"):
        h + LumiHists("x-1", {})
    assert book_for(h.book) is BOOK


def test_boost_histogram_export_equals_its_own_fill(events: ak.Array) -> None:
    bh = pytest.importorskip("boost_histogram")
    h = fill_event_bins(events, BOOK).hists()
    mu = BOOK.object_axes("muons")
    assert mu is not None
    mine = h.to_boost("muons/etaphi")
    own = bh.Histogram(mu.eta.boost(), mu.phi.boost(), storage=bh.storage.Int64())
    own.fill(flat(events, "Muon_eta"), np.clip(flat(events, "Muon_phi"), -np.pi,
                                               np.nextafter(np.pi, 0)))
    assert np.array_equal(mine.view(flow=True), own.view(flow=True))
    met = bh.Histogram(BOOK.met.boost(), storage=bh.storage.Int64())
    met.fill(ak.to_numpy(events["MET_pt"]).astype(np.float64))
    assert np.array_equal(h.to_boost("met/pt").view(flow=True), met.view(flow=True))
    assert (h.to_boost("jets/pt_region") + h.to_boost("jets/pt_region")).sum(flow=True) == \
        2 * h.total("jets/pt_region")
