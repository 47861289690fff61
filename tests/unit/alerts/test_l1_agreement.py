"""Firmware-vs-serving agreement per lumisection: tallies, summaries, the divergence alarm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hotline.alerts.l1_agreement import L1Agreement, L1Header, L1Tally
from hotline.alerts.records import EventTally, LumiSummary
from hotline.errors import StreamError
from hotline.stream.l1_emulation import divergence_alerts, sampled

FRAC = 18
HEADER = L1Header("ae_x", "3", "b0123456789a", FRAC,
                  (("Loose", 0.01, 0.05, int(np.floor(0.05 * 2 ** FRAC))),
                   ("Tight", 0.001, 0.1, int(np.floor(0.1 * 2 ** FRAC)))))


def _on_grid(x: np.ndarray) -> np.ndarray:
    return np.floor(x * 2 ** FRAC) / 2 ** FRAC


def _tally(events, fw, sv) -> L1Tally:
    return L1Tally.build(HEADER, events, _on_grid(np.asarray(fw, float)), sv)


def test_aggregate_counts_disagreements_per_seed_and_moments():
    rng = np.random.default_rng(1)
    sv = rng.exponential(0.02, 5000)
    fw = sv.copy()
    fw[:7] = 0.2  # 7 events the firmware fires and serving does not (at both seeds if sv low)
    sv[:7] = 0.0
    agg = _tally(np.arange(5000), fw, sv).aggregate()
    assert agg.n == 5000 and agg.n_failed == 0
    assert agg.disagree == {"Loose": 7, "Tight": 7}
    assert agg.agreement("Tight") == pytest.approx(1 - 7 / 5000)
    assert agg.worst[1] == pytest.approx(1 - 7 / 5000)
    assert agg.pass_fw["Tight"] - agg.pass_sv["Tight"] == 7
    assert 0.5 < agg.correlation < 1.0
    assert len(agg.top) == 5 and {int(r[0]) for r in agg.top} <= set(range(7))
    assert all(abs(r[1] - r[2]) >= 0.19 for r in agg.top)


def test_decisions_use_the_fixed_point_grid():
    """fw exactly on the seed's LSB does not pass (> not >=); one LSB above passes."""
    fixed = HEADER.seeds[1][3]
    fw = np.array([fixed, fixed + 1]) / 2 ** FRAC
    agg = L1Tally.build(HEADER, [1, 2], fw, [0.0, 1.0]).aggregate()
    assert agg.pass_fw["Tight"] == 1 and agg.disagree["Tight"] == 0


def test_union_counts_each_event_once_and_wire_round_trip():
    a = _tally([1, 2, 3], [0.01, 0.2, 0.03], [0.01, 0.01, 0.03])
    b = _tally([3, 4], [0.03, 0.04], [0.03, 0.04])
    u = a.union(b).union(a)
    assert list(u.events) == [1, 2, 3, 4]
    back = L1Tally.from_wire(json.loads(json.dumps(u.to_wire())))
    assert list(back.events) == [1, 2, 3, 4] and np.array_equal(back.fw, u.fw)
    assert back.aggregate().disagree == u.aggregate().disagree == {"Loose": 1, "Tight": 1}
    with pytest.raises(StreamError, match="L1 tally fw has 1 entries for 4 events"):
        L1Tally.from_wire({**u.to_wire(), "fw": L1Tally.build(HEADER, [1], [0.0], [0.0])
                           .to_wire()["fw"]})


def test_summary_carries_agreement_through_tally_store_form_and_restriction():
    t = EventTally.build([1, 2, 3, 4], [False] * 4)
    t1 = EventTally(t.events, t.bad, {}, {}, 0,
                    _tally([1, 2, 3, 4], [0.2, 0.0, 0.0, 0.0], [0.0] * 4))
    s = LumiSummary.of_tally("src", 5, 1, t1)
    assert s.l1.n == 4 and s.l1.disagree["Tight"] == 1
    # the store restricts a part to the events it had not counted: the agreement follows
    assert s.only([2, 3]).l1.disagree["Tight"] == 0 and s.only([2, 3]).l1.n == 2
    # a re-processed part united with the first counts each event once
    assert (s + s).l1.n == 4
    # whole stored summaries (no tally) add their aggregates
    whole = LumiSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert whole.tally is None and whole.l1.n == 4
    more = LumiSummary.of_tally("src", 5, 1, EventTally(
        np.array([9]), np.array([False]), {}, {}, 0, _tally([9], [0.0], [0.0])))
    merged = whole + LumiSummary.from_dict(more.to_dict())
    assert merged.l1.n == 5 and merged.l1.disagree["Tight"] == 1
    assert LumiSummary.from_dict(merged.to_dict()).l1.to_dict() == merged.l1.to_dict()
    # the wire form of a part keeps the per-event entries
    wired = LumiSummary.from_dict(json.loads(json.dumps(s.to_dict(tally=True))))
    assert wired.tally is not None and len(wired.tally.l1) == 4
    # summaries of a stream without emulation keep their layout
    assert "l1" not in LumiSummary.of_tally("src", 5, 1, t).to_dict()


def _lumi(n: int, n_wrong: int) -> LumiSummary:
    """A lumisection of ``n`` emulated events, ``n_wrong`` of which fire only in firmware."""
    sv, fw = np.zeros(n), np.zeros(n)
    fw[:n_wrong] = 0.2  # above both seeds' thresholds: differ at Loose and Tight
    return LumiSummary.of_tally("src", 7, 3, EventTally(
        np.arange(n), np.zeros(n, bool), {}, {}, 0, _tally(np.arange(n), fw, sv)))


def test_divergence_alarm_names_model_build_and_seed_once_per_lumisection():
    s = _lumi(20000, 60)  # 60 of 20,000 differ where 0.1 % (20) is allowed: p = 4e-13
    alerts = divergence_alerts(s, 0.999)
    assert {a.rule for a in alerts} == {"l1_divergence:ae_x:b0123456789a:Loose",
                                        "l1_divergence:ae_x:b0123456789a:Tight"}
    a = alerts[0]
    assert a.kind == "dqm" and (a.run, a.lumi) == (7, 3)
    assert a.payload["model"] == "ae_x" and a.payload["build"] == "b0123456789a"
    assert a.payload["subsystem"] == "L1 ae_x" and a.payload["disagree"] == 60
    assert a.payload["level"] == "red" and a.p_value == a.payload["p_corrected"]
    # exact binomial tail P(X >= 60 | 20000, 0.001), Sidak over the 2 seeds
    assert a.payload["p_binomial"] == pytest.approx(4.069e-13, rel=1e-3)
    assert a.p_value == pytest.approx(2 * 4.069e-13, rel=1e-3)
    assert "differ on 60 of 20000 events at" in a.payload["text"]
    assert "99.700%" in a.payload["text"] and "allowed 0.10%" in a.payload["text"]
    assert [x.id for x in divergence_alerts(s, 0.999)] == [x.id for x in alerts]  # stable ids


@pytest.mark.parametrize(("n", "n_wrong", "level"), [
    (20000, 25, None),  # 99.875 %: what a build at the bound shows in 16 % of lumisections
    (20000, 45, "amber"),  # p = 1.0e-6 -> 2.1e-6 after Sidak
    (20000, 15, None),
    (500, 2, None),  # 99.6 %: the demo run's lumisections; p = 0.09
    (500, 5, "amber"),  # p = 1.7e-4
    (500, 9, "red"),
    (2000, 0, None),
])
def test_divergence_alarm_is_an_exact_binomial_test_of_the_allowed_rate(n, n_wrong, level):
    alerts = divergence_alerts(_lumi(n, n_wrong), 0.999)
    assert [a.payload["level"] for a in alerts] == ([level] * 2 if level else [])


def test_the_bound_is_the_callers():
    s = _lumi(20000, 25)
    assert divergence_alerts(s, 0.999) == []
    assert {a.payload["level"] for a in divergence_alerts(s, 0.9999)} == {"red"}
    assert len(divergence_alerts(_lumi(500, 1), 1.0)) == 2  # no difference allowed at all


def test_failed_emulation_raises_the_alarm():
    fw = np.array([np.nan, np.nan, 0.0])
    agg = L1Tally.build(HEADER, [1, 2, 3], fw, [0.0, 0.0, 0.0]).aggregate()
    assert agg.n == 1 and agg.n_failed == 2
    s = LumiSummary("src", 1, 1, 3, 0, l1=agg)
    rules = [a.rule for a in divergence_alerts(s, 0.999)]
    assert rules == ["l1_emulation_failed:ae_x:b0123456789a"]


def test_sampling_is_deterministic_and_near_the_fraction():
    ev = np.arange(1, 200001)
    a, b = sampled(ev, 0.1), sampled(ev.copy(), 0.1)
    assert np.array_equal(a, b)
    assert 0.095 < a.mean() < 0.105
    assert sampled(ev, 1.0).all()


def test_agreement_of_another_build_replaces_the_older():
    a = L1Agreement(HEADER, n=3)
    b = L1Agreement(L1Header("ae_x", "3", "other", FRAC, HEADER.seeds), n=2)
    assert (a + b).header.build == "other" and (a + b).n == 2
