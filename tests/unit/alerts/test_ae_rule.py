"""The AE hotline rule inside the batch pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.ae_rule import AERule
from hotline.alerts.menu import build_rule
from hotline.models.scorer import Scorer
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from hotline.stream.samples import synthetic_events


def _batch(process: str, n: int, seed: int = 4) -> EventBatch:
    return EventBatch(arrays=synthetic_events(process, n, seed), source="test",
                      origin=f"{process}.root")


def test_ae_rule_alerts_carry_score_p_value_and_contributions(tiny_registry):
    sc = Scorer.from_registry("tiny", registry=tiny_registry)
    rule = AERule(sc, 1e-2)
    assert rule.kind == "ae" and rule.threshold == sc.threshold(1e-2)
    batch = _batch("fault_hot_jet", 400)
    ctx = PipelineContext(rules=[rule], features_required=True)
    res = process_batch(batch, ctx)
    feats = sc.score_arrays(*_features(batch))
    expected = np.flatnonzero(feats.total > rule.threshold)
    assert len(res.alerts) == expected.size > 0
    a = res.alerts[0]
    assert a.kind == "ae" and a.rule == rule.name
    i = int(expected[0])
    assert a.score == pytest.approx(float(feats.total[i]), rel=1e-6)
    assert a.p_value == pytest.approx(float(sc.p_value(feats.total[i:i + 1])[0]), rel=1e-6)
    assert a.p_value <= 1e-2
    c = a.payload["contributions"]
    assert sum(c["types"].values()) == pytest.approx(a.score, rel=1e-3)
    assert set(c["objects"]) == set(sc.object_labels)
    assert a.payload["model"] == "tiny" and a.payload["version"] == "1"
    assert set(a.payload["excess"]) == set(sc.type_labels)
    assert a.payload["top_type"] == max(c["types"], key=c["types"].get)
    # the hot-cell fault puts a fake jet in every event: jets are the most anomalous type
    tops = [x.payload["top_type"] for x in res.alerts]
    assert tops.count("jets") >= 0.9 * len(tops)
    s = next(iter(res.summaries.values()))
    assert rule.name in s.score_hist and sum(s.score_hist[rule.name]) == s.n_events


def _features(batch):
    from hotline.detectors.features import extract_features

    fm = extract_features(batch.arrays)
    return fm.x, fm.mask


def test_bad_events_are_not_scored_and_others_still_are(tiny_registry):
    sc = Scorer.from_registry("tiny", registry=tiny_registry)
    rule = AERule(sc, 0.05, name="ae")
    arrays = synthetic_events("sm", 200, 8)
    met = np.asarray(arrays["MET_pt"]).copy()
    met[5] = np.nan
    arrays["MET_pt"] = met
    res = process_batch(EventBatch(arrays, "test", "nan.root"),
                        PipelineContext(rules=[rule], features_required=True))
    assert len(res.deadletters) == 1 and res.deadletters[0].events == (6,)
    assert all(a.event != 6 for a in res.alerts)
    assert 0 < len(res.alerts) < 200


def test_ae_rule_kind_in_menus(tiny_registry):
    rule = build_rule({"name": "ae_menu", "kind": "ae", "model": "tiny", "p_value": 1e-3,
                       "registry": str(tiny_registry)})
    assert isinstance(rule, AERule) and rule.name == "ae_menu"
    from hotline.alerts.menu import available_rule_kinds

    assert {"ae", "count", "scalar", "sum_pt"} <= set(available_rule_kinds())
