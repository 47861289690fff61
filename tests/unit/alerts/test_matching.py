"""Vectorised subscription matching agrees with the per-alert reference definition."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.subscriptions import Subscription, SubscriptionFilter, SubscriptionMatcher
from hotline.errors import ConfigError
from tests.support.alerts import make_alerts

FILTERS = [
    {},
    {"kinds": ["ae"], "max_p": 1e-4},
    {"kinds": ["dqm"], "units": ["DT_*", "CSC_*"]},
    {"subsystems": ["ecal"]},
    {"subsystems": ["*"]},
    {"rules": ["dimuon_high_mass", "met_500"], "min_run": 300005, "max_run": 300010},
    {"min_significance": 4.0},
    {"tags": ["calib"]},
    {"tags": ["physics"], "kinds": ["classic", "ae"]},
    {"units": ["EB+03"], "max_p": 1e-3},
    {"object_types": ["muons"]},
    {"object_types": ["MET", "jets"], "max_p": 1e-4},
    {"sources": ["other"]},
]


def _subs(filters):
    return [Subscription(id=f"s{i}", owner="t", name="", filter=SubscriptionFilter.from_dict(f),
                         channel="webhook", settings={}, secret="whsec_x")
            for i, f in enumerate(filters)]


def test_vectorised_matching_equals_reference():
    alerts = make_alerts(3000, seed=5)
    subs = _subs(FILTERS)
    got = dict(SubscriptionMatcher(subs).match(alerts))
    for s in subs:
        expected = [i for i, a in enumerate(alerts) if s.filter.matches(a)]
        np.testing.assert_array_equal(got.get(s.id, np.array([], int)), expected,
                                      err_msg=s.filter.describe())
    # the filters are not trivial: each selects something and most reject something
    sizes = [len(got.get(s.id, [])) for s in subs]
    assert sizes[0] == 3000 and sizes[-1] == 0
    assert all(0 < n < 3000 for n in sizes[1:-1]), sizes


def test_dqm_top_units_are_matched():
    from hotline.alerts.records import AlertRecord

    a = AlertRecord.make(kind="dqm", rule="dqm_muon_barrel", source="s", run=1, lumi=2, event=0,
                         p_value=1e-6, payload={"subsystem": "muon_barrel", "top_units": [
                             {"level": "chamber", "unit": "MB2 W-1 S04"}]})
    subs = _subs([{"units": ["MB2 W-1 *"]}, {"units": ["MB1*"]}, {"subsystems": ["muon*"]}])
    got = dict(SubscriptionMatcher(subs).match([a]))
    assert set(got) == {"s0", "s2"}


def test_no_p_value_never_passes_p_cut():
    alerts = make_alerts(500, seed=1)
    m = dict(SubscriptionMatcher(_subs([{"max_p": 1.0}])).match(alerts))["s0"]
    assert all(alerts[i].p_value is not None for i in m)
    assert len(m) == sum(a.p_value is not None for a in alerts)


@pytest.mark.parametrize("bad", [{"kinds": ["bogus"]}, {"max_p": 2.0}, {"min_run": 5, "max_run": 4},
                                 {"colour": "red"}, {"object_types": ["muon"]}])
def test_bad_filters_are_refused(bad):
    with pytest.raises(ConfigError):
        SubscriptionFilter.from_dict(bad)


def test_ae_alerts_are_matched_by_the_type_they_point_to():
    from hotline.alerts.records import AlertRecord

    def ae(payload):
        return AlertRecord.make(kind="ae", rule="ae", source="s", run=1, lumi=2, event=0,
                                p_value=1e-5, payload=payload)

    alerts = [ae({"top_type": "MET", "explained_by": "muons"}), ae({"top_type": "jets"}),
              ae({}), AlertRecord.make(kind="classic", rule="ht300", source="s", run=1,
                                       lumi=2, event=1)]
    subs = _subs([{"object_types": ["muons"]}, {"object_types": ["MET"]},
                  {"object_types": ["jets"]}])
    got = {k: list(v) for k, v in SubscriptionMatcher(subs).match(alerts)}
    assert got == {"s0": [0], "s2": [1]}  # explained_by wins over the raw top type
    with pytest.raises(ConfigError, match="known: MET, electrons, muons, jets"):
        SubscriptionFilter.from_dict({"object_types": ["muon"]})
