"""The objects that fired a rule are in its alerts' ``objects`` payload, also for a
collection outside the feature spec (photons) and for objects the spec cuts away."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.alerts.menu import build_menu
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import ReplaySource
from tests.conftest import make_events
from tests.support.rootfiles import set_values, write_events


def _photons(arrays, i):
    return sorted(zip(*(ak.to_list(arrays[f"Photon_{f}"][i]) for f in ("pt", "eta", "phi"))),
                  reverse=True)


def test_photon_rule_alerts_carry_the_photons():
    arrays = make_events(400, seed=11)
    arrays = set_values(arrays, "Photon_pt", [7, 8], 150.0)  # fire 1pho_pt100
    res = process_batch(EventBatch(arrays, "s"), PipelineContext())
    pho = [a for a in res.alerts if a.rule == "1pho_pt100"]
    assert {7 + 1, 8 + 1} <= {a.event for a in pho}
    for a in pho:
        objs = [o for o in a.payload["objects"] if o[0].startswith("pho")]
        i = a.event - 1
        want = [(pt, eta, phi) for pt, eta, phi in _photons(arrays, i) if pt > 100]
        assert [o[0] for o in objs] == [f"pho{k}" for k in range(1, len(want) + 1)]
        np.testing.assert_allclose([o[1:] for o in objs], want, atol=1e-4)
        assert a.payload["objects"][0][0] == "met"  # the feature objects are still there
    three = [a for a in res.alerts if a.rule == "3pho_pt20"]
    assert all(sum(o[0].startswith("pho") for o in a.payload["objects"]) >= 3 for a in three)
    # other rules' alerts do not get photons they did not fire on
    assert not any(o[0].startswith("pho") for a in res.alerts if a.rule == "ht300"
                   for o in a.payload["objects"])


def test_spec_collection_objects_are_not_duplicated_and_cut_ones_are_added():
    arrays = make_events(100, seed=12)
    arrays = set_values(arrays, "Jet_pt", [3], 900.0, which=0)
    arrays = set_values(arrays, "Jet_eta", [3], 0.5, which=0)
    arrays = set_values(arrays, "Jet_pt", [5], 700.0, which=0)
    arrays = set_values(arrays, "Jet_eta", [5], 4.6, which=0)  # beyond the spec's |eta| < 4
    rule = next(r for r in build_menu() if r.name == "1jet_pt200")
    res = process_batch(EventBatch(arrays, "s"), PipelineContext(rules=[rule]))
    by_event = {a.event: a.payload["objects"] for a in res.alerts}
    central = [o for o in by_event[4] if o[0].startswith("j")]
    assert len({tuple(o[1:]) for o in central}) == len(central)  # no jet twice
    assert central[0][:3] == ["j1", 900.0, 0.5]
    forward = [o for o in by_event[6] if o[0].startswith("j")]
    assert [700.0, 4.6] == pytest.approx(forward[-1][1:3])
    assert forward[-1][0] == f"j{len(forward)}"


def test_photon_objects_from_a_replayed_root_file(tmp_path, store):
    arrays = set_values(make_events(100, seed=13, run=8), "Photon_pt", [40], 300.0)
    arrays = set_values(arrays, "Photon_eta", [40], 1.25)
    arrays = set_values(arrays, "Photon_phi", [40], -2.5)
    f = write_events(tmp_path / "photons.root", arrays)
    ctx = PipelineContext()
    run_embedded(ReplaySource([f], branches=ctx.branches()), ctx, store)
    [a] = [a for a in store.alerts(rule="1pho_pt100") if a.event == 41]
    assert ["pho1", 300.0, 1.25, -2.5] in a.payload["objects"]
