"""The one quarantine policy (detectors.quality): every branch read, whichever rules and
models are on; through process_batch and a real ROOT replay into the store."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np

from hotline.detectors.features import extract_features
from hotline.detectors.quality import DEFAULT_POLICY, bad_values, check_events, quantity
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import ReplaySource
from tests.conftest import make_events
from tests.support.rootfiles import set_values, write_events


def test_value_rules_per_quantity():
    assert [quantity(b) for b in ("MET_pt", "pt", "Jet_eta", "Photon_phi", "Jet_mass",
                                  "nJet")] == ["pt", "pt", "eta", "phi", "", ""]
    f = np.array([1.0, np.nan, -0.5, np.inf, 7.0, -math.pi, np.float32(math.pi)], np.float32)
    assert bad_values("Jet_pt", f).tolist() == [False, True, True, True, False, True, False]
    assert bad_values("Jet_eta", f).tolist() == [False, True, False, True, True, False, False]
    assert bad_values("Jet_phi", f).tolist() == [False, True, False, True, True, False, False]
    assert bad_values("Jet_mass", f).tolist() == [False, True, False, True, False, False,
                                                  False]
    # forward jets up to the HF edge and beyond (|eta| 5.2) pass; float32(pi) passes
    assert bad_values("Jet_eta", np.array([-5.19, 5.6], np.float32)) is None
    assert DEFAULT_POLICY.max_abs_eta == 6.0 and DEFAULT_POLICY.max_abs_phi > math.pi
    assert bad_values("Muon_charge", np.array([-1, 1], np.int32)) is None
    # integer "angles" are counters; generator-level truth has |eta| -> inf along the beam
    assert bad_values("nElectron_phi", np.array([0, 7], np.int32)) is None
    big = np.array([2e4, -1e5, 9.0], np.float32)
    assert bad_values("GenPart_eta", big) is None and bad_values("LHEPart_eta", big) is None
    assert bad_values("GenJet_phi", big) is None
    assert bad_values("GenPart_eta", np.array([np.nan], np.float32)).tolist() == [True]


def test_check_events_names_branch_reason_and_events():
    a = make_events(40, seed=5)
    a = set_values(a, "Photon_pt", [3], np.nan)         # outside the feature spec
    a = set_values(a, "MET_pt", [5, 6], -10.0)          # negative MET
    a = set_values(a, "Jet_eta", [7], 42.0)             # |eta| out of range
    a = set_values(a, "Electron_phi", [8], 4.0)         # |phi| out of range
    a = set_values(a, "Muon_pt", [9], np.inf)
    q = check_events(a)
    got = {(p.branch, p.reason): p.events.tolist() for p in q.problems}
    assert got == {("Photon_pt", "NaN or inf"): [3], ("MET_pt", "negative pT"): [5, 6],
                   ("Jet_eta", "|eta| > 6"): [7], ("Electron_phi", "|phi| > pi + 0.001"): [8],
                   ("Muon_pt", "NaN or inf"): [9]}
    assert np.flatnonzero(q.bad).tolist() == [3, 5, 6, 7, 8, 9]
    # the features apply the same policy to the branches they read (photons are not among them)
    fm = extract_features(a)
    assert np.flatnonzero(fm.bad).tolist() == [5, 6, 7, 8, 9]


def test_nulls_and_non_numeric_branches():
    a = ak.Array({"run": [1, 1, 1], "luminosityBlock": [1, 1, 1], "event": [1, 2, 3],
                  "Tau_pt": [[20.0, None], [30.0], []], "Tau_decay": ["a", "b", "c"]})
    q = check_events(a)
    assert [(p.branch, p.reason, p.events.tolist()) for p in q.problems] == [
        ("Tau_pt", "null (missing) value", [0])]


def test_quarantine_without_a_model_and_outside_the_feature_set():
    """Photon_pt NaN/inf is quarantined with the classic menu only; it fires no rule."""
    a = make_events(100, seed=2)
    a = set_values(a, "Photon_pt", [10], np.inf)  # would fire 1pho_pt100
    a = set_values(a, "Photon_pt", [60], np.nan)
    a = set_values(a, "MET_pt", [20], -5.0)
    a = set_values(a, "Jet_pt", [30], 1e4, which=0)  # fine: fires 1jet_pt200
    res = process_batch(EventBatch(a, "s", "mem"), PipelineContext())
    letters = {(d.reason, d.lumi): d.events for d in res.deadletters}
    assert letters == {("Photon_pt: NaN or inf; event quarantined", 1): (11,),
                       ("Photon_pt: NaN or inf; event quarantined", 2): (61,),
                       ("MET_pt: negative pT; event quarantined", 1): (21,)}
    assert all(d.run == 1 for d in res.deadletters)
    fired = {a.event for a in res.alerts}
    assert not fired & {11, 21, 61} and 31 in fired
    assert sum(s.n_bad for s in res.summaries.values()) == 3
    assert res.summaries[("s", 1, 1)].n_bad == 2 and res.summaries[("s", 1, 2)].n_bad == 1
    # quarantined events count in no rule
    clean = process_batch(EventBatch(a[np.setdiff1d(np.arange(100), [10, 20, 60])], "s"),
                          PipelineContext())
    for key, s in res.summaries.items():
        assert s.rule_counts == clean.summaries[key].rule_counts


def test_quarantine_is_independent_of_missing_feature_branches():
    """Before: a missing feature branch with no model switched the quarantine off."""
    a = make_events(50, seed=4)
    a = a[[f for f in a.fields if f != "Muon_eta"]]
    a = set_values(a, "Electron_pt", [2], np.nan)
    res = process_batch(EventBatch(a, "s"), PipelineContext())
    [dl] = res.deadletters
    assert dl.events == (3,) and dl.reason.startswith("Electron_pt: NaN")


def test_replay_of_a_root_file_quarantines_and_stores_the_reasons(tmp_path, store):
    a = make_events(200, seed=8, run=5)
    a = set_values(a, "Photon_eta", [4], -9.0)
    a = set_values(a, "Jet_phi", [150], 7.0)
    a = set_values(a, "MET_pt", [199], np.nan)
    f = write_events(tmp_path / "bad_values.root", a)
    ctx = PipelineContext()
    src = ReplaySource([f], branches=ctx.branches(), step_size=64)
    rep = run_embedded(src, ctx, store)
    assert rep.events == 200 and not src.errors
    got = sorted((d.run, d.lumi, d.events, d.reason.split(";")[0]) for d in store.deadletters())
    assert got == [(5, 1, (5,), "Photon_eta: |eta| > 6"),
                   (5, 4, (151,), "Jet_phi: |phi| > pi + 0.001"),
                   (5, 4, (200,), "MET_pt: NaN or inf")]
    sums = {s.lumi: s for s in store.summaries(run=5)}
    assert [sums[ls].n_bad for ls in (1, 2, 3, 4)] == [1, 0, 0, 2]
    stored = {a.event for a in store.alerts()}
    assert stored and not {5, 151, 200} & stored


def test_check_events_is_vectorised():
    """A clean batch costs one pass per branch: 100k events well under 50 ms."""
    import time

    a = make_events(100_000, seed=1)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        q = check_events(a)
        times.append(time.perf_counter() - t0)
    assert not q.bad.any() and min(times) < 0.05
