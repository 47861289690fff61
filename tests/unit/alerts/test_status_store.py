"""Reference runs and lumisection flags in a real alert store (alerts.reference,
alerts.certification). The tests taking only ``store`` also run on PostgreSQL
(tests/integration/postgres/test_status_postgres.py)."""

from __future__ import annotations

import numpy as np

from hotline.alerts.certification import (
    bad_json,
    flag_history,
    flags,
    golden_json,
    override,
    record_assessment,
)
from hotline.alerts.lumi_status import LumiStatus, RunStatus
from hotline.alerts.records import AlertRecord
from hotline.alerts.reference import (
    compute_reference,
    current_reference,
    reference_history,
    save_reference,
)
from hotline.alerts.run_status import assess_run
from tests.support.status_sim import sim_run


def _fill(store, run: int, seed: int, **kw) -> None:
    store.upsert_summaries(sim_run(np.random.default_rng(seed), run=run, n_lumis=30, **kw))


def test_reference_provenance_and_history(store):
    _fill(store, 10, 1)
    _fill(store, 11, 2)
    store.add_alerts([AlertRecord.make(kind="dqm", rule="dqm_calo_regions", source="hotline",
                                       run=10, lumi=4, event=0, score=3.0, p_value=1e-4,
                                       payload={"subsystem": "calo_regions",
                                                "alert_p_value": 1e-3})])
    assert current_reference(store) is None
    ref = compute_reference(store, 10, lumis=[(1, 20)], set_by="alice", comment="clean fill")
    saved = save_reference(store, ref)
    assert saved.seq is not None and saved.run == 10 and saved.lumis == [[1, 20]]
    assert saved.n_lumis == 20 and saved.events == 20 * 500 and saved.set_by == "alice"
    assert saved.comment == "clean fill" and saved.code_version.startswith("hotline ")
    assert set(saved.rules) == {"ht300", "2mu_pt15", "met250", "1e_pt100", "1mu_pt100"}
    assert saved.rules["ht300"]["n"] == saved.good_events
    assert 0.18 < saved.rules["ht300"]["k"] / saved.rules["ht300"]["n"] < 0.22
    assert saved.dqm["calo_regions"] == {"k": 1.0, "n": 20.0, "p_cal": 1e-3}
    assert saved.input["mean"] == 500 and "sim_p1e-03" in saved.ae
    save_reference(store, compute_reference(store, 11, set_by="bob"))
    hist = reference_history(store, "hotline")
    assert [r.run for r in hist] == [11, 10]  # newest first, the older one kept
    assert current_reference(store, "hotline").set_by == "bob"
    assert current_reference(store, "other") is None


def test_assess_run_reads_reference_and_alerts(store):
    _fill(store, 20, 3)
    _fill(store, 21, 4, rule_scale={ls: {"2mu_pt15": 3.0} for ls in range(10, 16)})
    save_reference(store, compute_reference(store, 20, set_by="test"))
    st = assess_run(store, 21, model=False)
    assert st.reference["reference"]["run"] == 20
    flagged = [ls.lumi for ls in st.lumis if ls.level != "green"]
    assert set(range(10, 16)) <= set(flagged) and len(flagged) <= 8
    rg = next(r for r in st.ranges if r.first <= 12 <= r.last)
    assert "2mu_pt15 rate is" in rg.reason and "the reference" in rg.reason
    loo = assess_run(store, 21, model=False, reference=False)
    assert loo.reference["reference"] is None and "leave-one-out" in loo.ranges[0].reason


def _status(levels: dict[int, str]) -> RunStatus:
    lumis = tuple(LumiStatus(ls, lv, 500, (), "" if lv == "green" else f"{lv} because")  # type: ignore[arg-type]
                  for ls, lv in levels.items())
    return RunStatus("hotline", 5, "red", "x", lumis)


def test_certification_overrides_survive_reassessment(store):
    levels = {ls: "green" for ls in range(1, 11)}
    levels.update({4: "amber", 6: "red", 7: "red"})
    record_assessment(store, _status(levels))
    f = {x.lumi: x for x in flags(store, 5)}
    assert f[6].good is False and f[4].good is True and f[4].level == "amber"
    assert golden_json(list(f.values())) == {"5": [[1, 5], [8, 10]]}
    bad = bad_json(list(f.values()))
    assert [(g["first"], g["last"], g["decided_by"]) for g in bad["bad"]] == [(6, 7, "auto")]
    assert [(g["first"], g["last"]) for g in bad["review"]] == [(4, 4)]
    # the expert: LS 7 is fine after all, LS 9-10 are bad
    override(store, "hotline", 5, [7], True, "noise burst, checked", "carol")
    override(store, "hotline", 5, [9, 10], False, "magnet ramp", "carol")
    n_rows = len(flag_history(store, 5))
    # re-running the assessment (same result) adds nothing and loses no override
    record_assessment(store, _status(levels))
    assert len(flag_history(store, 5)) == n_rows
    # a changed assessment is recorded, the overrides still win
    levels[9] = "amber"
    after = {x.lumi: x for x in record_assessment(store, _status(levels))}
    assert len(flag_history(store, 5)) == n_rows + 1
    assert after[7].good and after[7].decided_by == "carol"
    assert not after[9].good and after[9].comment == "magnet ramp"
    assert golden_json(list(after.values())) == {"5": [[1, 5], [7, 8]]}
    bad = bad_json(list(after.values()))
    assert [(g["first"], g["last"], g["decided_by"]) for g in bad["bad"]] == [
        (6, 6, "auto"), (9, 10, "carol")]
    assert bad["bad"][1]["comment"] == "magnet ramp" and bad["bad"][1]["at"] > 0
    # amber certified bad when configured so
    strict = {x.lumi: x for x in record_assessment(store, _status(levels), amber_good=False)}
    assert not strict[4].good and strict[7].good  # override still wins
