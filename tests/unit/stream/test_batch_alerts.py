"""Alerts built per batch (``stream.batch_alerts``): the same records as one ``make`` each,
one objects payload per alerted event shared by its rules, features only where needed."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from hotline.alerts.menu import build_menu
from hotline.alerts.records import AlertRecord, alert_id, alert_ids, payload_json
from hotline.alerts.rules import RuleOutcome
from hotline.detectors.features import extract_features
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events
from tests.support.rootfiles import set_values


def test_batch_ids_and_records_are_those_of_make():
    runs, lumis, events = [1, 1, 7], [2, 3, 9], [10, 11, 2**40]
    ids = alert_ids("src", runs, lumis, events, "met250")
    assert ids == [alert_id("src", r, ls, e, "met250") for r, ls, e in zip(runs, lumis, events)]
    payloads = [{"objects": [["met", 300.5, 0.0, 1.25]]}, {"objects": []},
                {"objects": [["j1", 1.0, 2.0, 3.0]], "model": "m", "z": [1, 2]}]
    recs = AlertRecord.batch(kind="ae", rule="met250", source="src", ids=ids, runs=runs,
                             lumis=lumis, events=events, scores=[1.5, None, 3.0],
                             p_values=[1e-3, None, 0.5], payloads=payloads,
                             payload_texts=[payload_json(payloads[0]), None, None], created=5.0)
    for r, run, ls, ev, sc, p, pl in zip(recs, runs, lumis, events, [1.5, None, 3.0],
                                         [1e-3, None, 0.5], payloads):
        made = AlertRecord.make(kind="ae", rule="met250", source="src", run=run, lumi=ls,
                                event=ev, score=sc, p_value=p, payload=pl, created=5.0)
        assert r == made
        # the JSON text: the old encoding's, with the payload's text reused
        assert r.to_json() == json.dumps(asdict(made), sort_keys=True, allow_nan=False)
        assert json.loads(r.payload_json) == pl


def test_rules_firing_on_one_event_share_its_objects_payload():
    arrays = make_events(300, seed=3)
    arrays = set_values(arrays, "MET_pt", [4, 5], 400.0)
    arrays = set_values(arrays, "Jet_pt", [4], 500.0)  # 1jet_pt200 and ht300 too
    res = process_batch(EventBatch(arrays, "s"), PipelineContext())
    on4 = [a for a in res.alerts if a.event == 5]
    assert {"met250", "1jet_pt200", "ht300"} <= {a.rule for a in on4}
    met = next(a for a in on4 if a.rule == "met250")
    # every alert of the event whose rule added no objects of its own shares one payload
    # text, written once (its lists are parsed from it when read)
    shared = [a for a in on4 if a.payload["objects"] == met.payload["objects"]]
    assert len(shared) >= 2
    assert len({id(a.payload_json) for a in shared}) == 1
    assert "payload" not in on4[0].__dict__ or on4[0].payload == json.loads(
        on4[0].payload_json)
    assert all(json.loads(a.payload_json) == a.payload for a in on4)


class _WantsFeatures:
    """A user rule that reads the whole batch's features (and so gets them)."""

    name, kind, needs = "wants_features", "classic", []

    def evaluate(self, arrays, context):
        f = context["features"]
        return RuleOutcome(self.name, f.x[:, 0] > 250.0)  # MET pT


def test_features_only_for_alerted_events_unless_asked(monkeypatch):
    import hotline.stream.batch_alerts as ba

    sizes: list[int] = []

    def counting(arrays, *a, **k):
        sizes.append(len(arrays))
        return extract_features(arrays, *a, **k)

    monkeypatch.setattr(ba, "extract_features", counting)
    arrays = set_values(make_events(500, seed=4), "MET_pt", [1, 2, 3], 400.0)
    menu = build_menu([{"name": "met250", "kind": "scalar", "branch": "MET_pt",
                        "min_value": 250}])
    lazy = process_batch(EventBatch(arrays, "s"), PipelineContext(rules=menu))
    assert sizes == [len(lazy.alerts)] and 0 < len(lazy.alerts) < 50
    eager = process_batch(EventBatch(arrays, "s"),
                          PipelineContext(rules=menu, features_required=True))
    assert sizes[-1] == 500
    assert [(a.id, a.payload) for a in lazy.alerts] == [(a.id, a.payload) for a in eager.alerts]
    sizes.clear()
    asked = process_batch(EventBatch(arrays, "s"), PipelineContext(rules=[*menu,
                                                                          _WantsFeatures()]))
    assert sizes == [500]  # extracted once, for the whole batch, and reused for the payloads
    assert np.array_equal(sorted(a.event for a in asked.alerts if a.rule == "wants_features"),
                          sorted(a.event for a in asked.alerts if a.rule == "met250"))


def test_objects_text_is_the_json_of_the_rounded_objects():
    """``spec_objects`` writes the text ``json.dumps`` gives for the [label, pt, eta, phi]
    lists (rounded to 4 digits) without building them: every mask pattern, signs, -0.0."""
    from hotline.stream.batch_alerts import spec_objects

    fm = extract_features(make_events(400, seed=9))
    rng = np.random.default_rng(2)
    fm.x[:] = (rng.normal(0, 50, fm.x.shape) * rng.choice([1e-5, 1.0, 1e3], fm.x.shape)
               ).astype(np.float32)
    fm.x[:5] = -0.0
    fm.mask[:] = rng.random(fm.mask.shape) < 0.4
    fm.mask[7] = False
    rows = np.sort(rng.choice(400, 150, replace=False))
    rows[:2] = [5, 7]
    labels = fm.spec.object_labels
    want = [json.dumps([[labels[j], *np.round(fm.objects()[r, j].astype(np.float64), 4).tolist()]
                        for j in np.flatnonzero(fm.mask[r])]) for r in rows]
    assert spec_objects(fm, rows) == want
    assert spec_objects(None, rows[:3]) == ["[]"] * 3
