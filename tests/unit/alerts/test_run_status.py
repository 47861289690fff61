"""The run-status engine on simulated runs with known truth (alerts.run_status).

Runs are drawn with tests/support/status_sim.py: 500 events per lumisection, an AE model
with thresholds at p = 1e-2 .. 1e-5 (exact Exp(1) survival), five classic rules whose
reference fractions come from a finite 40-lumisection reference run, rare quarantine.
"""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.records import AlertRecord
from hotline.alerts.reference import reference_from_summaries
from hotline.alerts.run_status import METHOD, assess_lumis, locate
from tests.support.status_sim import AE_RULE, non_green, sim_model, sim_run

FAULT = range(25, 33)


@pytest.fixture(scope="module")
def model():
    return sim_model()


@pytest.fixture(scope="module")
def reference():
    return reference_from_summaries(sim_run(np.random.default_rng(100), run=100, n_lumis=40),
                                    set_by="test")


@pytest.mark.parametrize("with_reference", [True, False])
def test_clean_runs_have_at_most_one_flagged_lumisection_in_100(with_reference, model,
                                                                 reference):
    rng = np.random.default_rng(7 if with_reference else 8)
    flagged = total = 0
    for r in range(12):
        st = assess_lumis(sim_run(rng, run=r + 1, n_lumis=50),
                          reference=reference if with_reference else None, model=model)
        flagged += len(non_green(st.lumis))
        total += len(st.lumis)
    assert total == 600
    assert flagged <= 0.01 * total, flagged


def test_ae_rate_x10_at_p1e3_flagged_on_at_least_7_of_8(model, reference):
    rng = np.random.default_rng(21)
    for r in range(6):
        sums = sim_run(rng, run=r + 1, n_lumis=50, ae_boost={ls: 9e-3 for ls in FAULT})
        st = assess_lumis(sums, reference=reference, model=model)
        ng = non_green(st.lumis)
        assert sum(ls in ng for ls in FAULT) >= 7, (r, ng)
        assert len([ls for ls in ng if ls not in FAULT]) <= 4, (r, ng)
        worst = next(rg for rg in st.ranges if rg.first <= 28 <= rg.last)
        assert "AE rate at p=1e-3" in worst.reason and "x expected" in worst.reason
        assert st.level in ("amber", "red") and worst.label() in st.reason


def test_rule_x3_flagged_on_7_of_8_with_a_reference(model, reference):
    rng = np.random.default_rng(31)
    hits = 0
    runs = 8
    for r in range(runs):
        sums = sim_run(rng, run=r + 1, n_lumis=50,
                       rule_scale={ls: {"1mu_pt100": 3.0} for ls in FAULT})
        st = assess_lumis(sums, reference=reference, model=model)
        ng = non_green(st.lumis)
        hits += sum(ls in ng for ls in FAULT)
        assert any("1mu_pt100" in rg.reason for rg in st.ranges), st.verdict()
    assert hits >= 7 * runs, hits


def test_without_reference_leave_one_out_is_said_and_finds_a_fault(model):
    rng = np.random.default_rng(41)
    sums = sim_run(rng, n_lumis=50, rule_scale={ls: {"2mu_pt15": 3.0} for ls in FAULT})
    st = assess_lumis(sums, model=model)
    assert sum(ls in non_green(st.lumis) for ls in FAULT) >= 7
    assert "leave-one-out" in st.ranges[0].reason
    assert st.reference["reference"] is None


def test_slow_drift_is_caught_by_the_trend_test(model, reference):
    rng = np.random.default_rng(51)
    ramp = {ls: {"ht300": 1 + 0.6 * max(0, ls - 20) / 60} for ls in range(1, 81)}
    st = assess_lumis(sim_run(rng, n_lumis=80, rule_scale=ramp), reference=reference,
                      model=model)
    trends = [f for ls in st.lumis for f in ls.findings
              if f.kind == "trend" and f.quantity == "trend:rule:ht300"]
    assert trends and trends[0].level in ("amber", "red")
    flagged = non_green(st.lumis)
    assert flagged and min(flagged) > 30 and max(flagged) >= 75  # the late, drifted part
    # the same drift lumisection by lumisection is mostly not significant on its own
    own = [f for ls in st.lumis for f in ls.findings
           if f.quantity == "rule:ht300" and f.level != "green"]
    assert len(own) < len(flagged)


def test_one_event_above_p1e5_is_green(model, reference):
    sums = sim_run(np.random.default_rng(61), n_lumis=10)
    st = assess_lumis(sums, reference=reference, model=model)
    f = [f for ls in st.lumis for f in ls.findings]
    assert all("14" not in x.text.split("sigma")[0][-6:] for x in f)
    assert st.level == "green" and "as expected" in st.reason


def test_method_and_unavailable_and_idle(model):
    assert assess_lumis([]).level == "idle"
    sums = sim_run(np.random.default_rng(62), n_lumis=5)
    sums[2].unavailable = {"met250"}
    st = assess_lumis(sums, model=model)
    assert st.lumi(3).level == "amber" and "met250" in st.lumi(3).reason
    assert "Sidak" in st.method and "CUSUM" in st.method and st.method == METHOD


def _ae(lumi: int, event: int, objects, top="jets") -> AlertRecord:
    contrib = {"types": {"jets": 2.0, "muons": 0.5}, "objects": {o[0]: 1.0 for o in objects}}
    return AlertRecord.make(kind="ae", rule=AE_RULE, source="hotline", run=1, lumi=lumi,
                            event=event, payload={"objects": objects, "contributions": contrib,
                                                  "explained_by": top})


def test_reasons_localise_from_the_alerts_and_dqm(model, reference):
    rng = np.random.default_rng(71)
    sums = sim_run(rng, n_lumis=40, ae_boost={ls: 9e-3 for ls in FAULT})
    alerts: dict[int, list[AlertRecord]] = {}
    for ls in FAULT:
        for e in range(4):
            phi = float(rng.uniform(-3, 3))
            alerts.setdefault(ls, []).append(_ae(ls, e, [
                ["met", 50.0, 0.0, 1.0], ["j1", 80.0, float(rng.uniform(-2, 2)), phi],
                ["j2", 60.0, 1.8 + 0.01 * e, 2.6], ["mu1", 30.0, -1.0, 0.5]]))
    dqm = {ls: [AlertRecord.make(kind="dqm", rule="dqm_calo_regions", source="hotline", run=1,
                                 lumi=ls, event=0, score=9.0, p_value=1e-9,
                                 payload={"subsystem": "calo_regions", "alert_p_value": 1e-3,
                                          "top_units": [{"level": "region",
                                                         "unit": "phi16_eta11"}]})]
           for ls in FAULT}
    st = assess_lumis(sums, reference=reference, model=model, dqm=dqm, alerts=alerts)
    rg = next(r for r in st.ranges if r.first <= 28 <= r.last)
    assert "alerts point to jets near eta 1.8, phi 2.6" in rg.reason
    assert "DQM: calo_regions region phi16_eta11" in rg.reason
    assert st.lumi(28).level == "red"
    assert locate([]) == ""
