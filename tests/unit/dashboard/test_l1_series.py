"""The L1 agreement shaping shared by the live view and the run report, on real summaries:
tallies of emulated events -> ``LumiSummary`` -> a real SQLite store and back, alarms from
the real divergence test."""

from __future__ import annotations

import math

import pytest

from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.dashboard.l1_series import (
    l1_alarms,
    l1_builds,
    l1_lumi_rows,
    l1_points,
    l1_seeds,
    l1_selection,
    lumi_ranges,
    not_emulated,
    per_seed,
)
from hotline.stream.l1_emulation import divergence_alerts
from tests.support.l1_summaries import BAD, emulated_lumi


@pytest.fixture
def stored(store):
    """Run 7: LS 1-2 good, LS 3 30 wrong (red), LS 4 the mis-deployed build (red), LS 5
    not emulated, LS 6 failed emulation; read back from the store with their alarms."""
    sums = [emulated_lumi(1), emulated_lumi(2, 1), emulated_lumi(3, 30),
            emulated_lumi(4, 40, header=BAD), LumiSummary("hotline", 7, 5, n_events=4000),
            emulated_lumi(6, fail=True)]
    store.upsert_summaries(sums)
    alerts = [a for s in sums for a in divergence_alerts(s, 0.999)]
    # an occupancy DQM alert of the same run is no L1 alarm
    alerts.append(AlertRecord.make(kind="dqm", rule="dqm_calo", source="hotline", run=7,
                                   lumi=3, event=0, payload={"subsystem": "calo"}))
    store.add_alerts(alerts)
    return store.summaries(run=7), list(store.iter_alerts(run=7))


def test_points_per_lumisection_and_seed_with_fraction_and_alarms(stored):
    sums, alerts = stored
    alarms = l1_alarms(alerts)
    assert sorted(alarms) == [3, 4, 6]  # the calorimeter DQM alert is not one of them
    assert [a.label for a in alarms[3]] in (["Loose red", "Tight red"],
                                            ["Tight red", "Loose red"])
    assert [a.label for a in alarms[6]] == ["emulation failed red"]
    assert {a.build for a in alarms[4]} == {"ffffeeee0000"}
    pts = l1_points(sums, alarms)
    assert pts["lumi"] == [1, 1, 2, 2, 3, 3, 4, 4, 6, 6]  # LS 5 was not emulated
    assert pts["seed"] == ["Loose", "Tight"] * 5
    n = len(range(10, 4000, 2))  # every second good event
    assert set(pts["n"][:8]) == {n} and set(pts["n_good"]) == {3990}
    assert pts["fraction"][0] == pytest.approx(n / 3990)
    assert pts["fraction_text"][0] == f"{n / 3990:.1%}"
    assert pts["differ"][:8] == [0, 0, 1, 1, 30, 30, 40, 40]
    assert pts["agreement"][4] == pytest.approx(1 - 30 / n)
    assert pts["agreement_text"][2] == f"{1 - 1 / n:.3%}"
    assert pts["alarm"][:4] == ["", "", "", ""]
    assert pts["alarm"][4] == "Loose red" and pts["alarm"][5] == "Tight red"
    assert pts["build"][6] == "ffffeeee0000"
    # failed emulation: nothing compared, so no agreement (not 100 %), the alarm on both seeds
    assert all(math.isnan(a) for a in pts["agreement"][8:])
    assert pts["agreement_text"][8] == "- (emulation failed)"
    assert pts["n"][8] == 0 and pts["n_failed"][8] == n
    assert pts["alarm"][8:] == ["emulation failed red"] * 2
    series = per_seed(pts)
    assert list(series) == l1_seeds(sums) == ["Loose", "Tight"]
    assert series["Tight"]["lumi"] == [1, 2, 3, 4, 6]


def test_builds_and_their_lumisections_a_replaced_build_shows_twice(stored):
    sums, _ = stored
    builds = l1_builds(sums)
    assert [b.label for b in builds] == ["ae_x v3 build b0123456789a",
                                         "ae_x v3 build ffffeeee0000"]
    assert builds[0].lumis == (1, 2, 3, 6) and builds[1].lumis == (4,)
    assert lumi_ranges(builds[0].lumis) == "LS 1-3, 6" and lumi_ranges([]) == ""


def test_selection_merges_per_build_never_across(stored):
    sums, _ = stored
    n = len(range(10, 4000, 2))
    (one,) = l1_selection(sums, [3])
    assert one["n"] == n and one["n_failed"] == 0 and one["n_good"] == 3990
    assert one["fraction"] == pytest.approx(n / 3990)
    assert [s["differ"] for s in one["seeds"]] == [30, 30]
    assert one["seeds"][1] == {"seed": "Tight", "p": 0.001, "threshold": 0.1,
                               "fixed": 26214, "differ": 30,
                               "agreement": pytest.approx(1 - 30 / n), "pass_fw": 30,
                               "pass_sv": 0}
    assert len(one["top"]) == 5 and {t["lumi"] for t in one["top"]} == {3}
    assert one["top"][0]["event"] == 300_000 + 10 + 2 * 29  # the largest difference
    assert one["top"][0]["diff"] == pytest.approx(0.2 + 0.29 - 0.01)
    both = l1_selection(sums, [3, 4])
    assert [p["build"].header.build for p in both] == ["b0123456789a", "ffffeeee0000"]
    assert [p["seeds"][0]["differ"] for p in both] == [30, 40]
    run = l1_selection(sums)  # the whole run
    assert run[0]["n"] == 3 * n and run[0]["n_failed"] == n and run[0]["n_good"] == 4 * 3990
    assert [s["differ"] for s in run[0]["seeds"]] == [31, 31]
    assert run[0]["top"][0]["lumi"] == 3 and 0.0 < run[0]["correlation"] <= 1.0
    assert l1_selection(sums, [5]) == []  # not emulated


def test_lumi_rows_list_the_differing_failed_and_alarmed(stored):
    sums, alerts = stored
    rows = l1_lumi_rows(sums, l1_alarms(alerts))
    assert [r["lumi"] for r in rows] == [2, 3, 4, 6]
    n = len(range(10, 4000, 2))
    assert rows[0]["differ"] == f"Loose 1 ({1 - 1 / n:.3%}), Tight 1 ({1 - 1 / n:.3%})"
    assert rows[0]["alarms"] == "" and rows[0]["n_differ"] == 2
    assert rows[3]["alarms"] == "emulation failed red" and rows[3]["n_failed"] == n


def test_a_malformed_alarm_payload_still_names_its_seed_and_level():
    """An alarm written by another writer (payload without seed / level) is still read from
    its rule name and p-value."""
    a = AlertRecord.make(kind="dqm", rule="l1_divergence:ae_x:b0123456789a:Tight",
                         source="hotline", run=7, lumi=9, event=0, p_value=1e-9,
                         payload={"junk": 1})
    (alarm,) = l1_alarms([a])[9]
    assert (alarm.seed, alarm.level, alarm.build) == ("Tight", "red", "b0123456789a")


def test_not_emulated_is_one_line_naming_the_option():
    line = not_emulated(12)
    assert "\n" not in line and line.startswith("Run 12 was not emulated")
    assert "--emulate BUILD_DIR" in line and "--emulate-fraction" in line
