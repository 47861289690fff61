"""A small real run for the run-report tests: a ROOT file replayed into a real SQLite store.

``replay_run(folder)`` writes run 42 (40 lumisections x 50 events, three events with a NaN
muon eta -> quarantined), replays it through the embedded pipeline with the classic menu
plus the shipped AE at p = 1e-2 and the shipped calorimeter conv-AE (a hot region
injected in LS 25-32), and returns the store path. ``run_status`` and ``lumi_flags``
build the status and certification the report takes as inputs, with user text that
must be escaped (HTML in a reason and in an expert's comment).
"""

from __future__ import annotations

from pathlib import Path

from hotline.alerts.lumi_status import Finding, LumiFlag, LumiRange, LumiStatus, RunStatus

RUN = 42
SOURCE = "hotline"
LUMIS = 40
EVENTS_PER_LUMI = 100  #: the DQM models are calibrated from 100 events per LS
BAD = range(25, 33)  #: the faulty lumisections
AE_P = 1e-2
#: user text that must come out as text, never as markup
EVIL = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned=2'>"
REASON = "AE rate at p=1e-2 is 3x expected (p = 2e-9); DQM: calo region phi16 eta11 hot"


def replay_run(folder: Path) -> Path:
    """Replay run 42 into ``folder/alerts.db`` (see the module docstring); its path."""
    from hotline.alerts.ae_rule import AERule
    from hotline.alerts.menu import build_menu
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.detectors.occupancy_faults import Fault
    from hotline.models.scorer import Scorer
    from hotline.stream.dqm_pipeline import DQMContext, DQMMonitor
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource
    from tests.conftest import make_events
    from tests.support.rootfiles import set_values, write_events

    arrays = make_events(LUMIS * EVENTS_PER_LUMI, seed=5, run=RUN,
                         events_per_lumi=EVENTS_PER_LUMI)
    arrays = set_values(arrays, "Muon_eta", [200, 201, 3000], float("nan"))
    f = write_events(folder / f"run{RUN}.root", arrays)
    scorer = Scorer.from_registry("ae_default")
    ctx = PipelineContext(rules=build_menu() + [AERule(scorer, AE_P)], spec=scorer.spec,
                          features_required=True)
    branches = ctx.branches() + [f"{c}_{x}" for c in ("Muon", "Jet", "Electron", "Photon")
                                 for x in ("pt", "eta", "phi")]
    path = folder / "alerts.db"
    store = SQLiteAlertStore(path)
    try:
        dqm = DQMMonitor(DQMContext.from_registry(["calo_regions"], None, p_value=1e-3), store,
                         faults={"calo_regions": [Fault("hot_channel", 20.0)]},
                         fault_lumis=set(BAD))
        run_embedded(ReplaySource([f], branches=list(dict.fromkeys(branches)), source=SOURCE,
                                  progress=False), ctx, store, on_result=dqm)
        dqm.finish()
    finally:
        store.close()
    return path


def run_status(lumis: int = LUMIS) -> RunStatus:
    """RED run: LS 25-32 red (an AE finding and a DQM finding), LS 3 amber, the rest green."""
    out = []
    for ls in range(1, lumis + 1):
        if ls in BAD:
            findings = (
                Finding("ae_default_p1e-02", "ae", 3.0 * AE_P * 50, AE_P * 50, 50, 2e-9, 1e-7,
                        "red", "AE rate at p=1e-2 is 3x expected (p = 2e-9)",
                        "jets near eta 1.8, phi 2.6"),
                Finding("dqm:conv_calo_regions", "dqm", 1, 0.001, 1, 1e-6, 4e-5, "red",
                        "calo_regions map anomalous", "calo region phi16 eta11 hot"),
                Finding("rule:2mu_pt15", "rule", 9, 5.0, 50, 0.07, 1.0, "green",
                        "2mu_pt15 as expected"),
            )
            out.append(LumiStatus(ls, "red", EVENTS_PER_LUMI, findings, REASON))
        elif ls == 3:
            out.append(LumiStatus(ls, "amber", EVENTS_PER_LUMI, (
                Finding("quarantine", "quarantine", 2, 0.05, 50, 1e-3, 0.04, "amber",
                        f"2 quarantined events {EVIL}"),), f"quarantined events {EVIL}"))
        else:
            out.append(LumiStatus(ls, "green", EVENTS_PER_LUMI, (
                Finding("rule:2mu_pt15", "rule", 5, 5.0, 50, 0.5, 1.0, "green",
                        "2mu_pt15 as expected"),
                Finding("input_rate", "input", 50, 50.0, 50, 0.5, 1.0, "green", "as expected"),
            )))
    ranges = (LumiRange(3, 3, "amber", f"quarantined events {EVIL}"),
              LumiRange(BAD[0], BAD[-1], "red", REASON))
    return RunStatus(SOURCE, RUN, "red", "LS 25-32 bad: AE rate and calo region hot",
                     tuple(out), ranges,
                     reference={"run": 41, "set_by": "expert", "model": "ae_default v4"},
                     method="exact Poisson tails, Holm-Bonferroni across quantities")


def lumi_flags(lumis: int = LUMIS) -> list[LumiFlag]:
    """Certification: LS 25-32 bad (auto); LS 3 overridden to good by an expert whose
    comment holds markup; LS 40 overridden to bad."""
    flags = []
    for ls in range(1, lumis + 1):
        if ls in BAD:
            flags.append(LumiFlag(SOURCE, RUN, ls, False, "red", REASON, at=1.7e9))
        elif ls == 3:
            flags.append(LumiFlag(SOURCE, RUN, ls, True, "amber", "quarantined events",
                                  decided_by="alice", comment=f"checked {EVIL} & ok",
                                  at=1.7e9 + 60))
        elif ls == lumis:
            flags.append(LumiFlag(SOURCE, RUN, ls, False, "green", "beam dump",
                                  decided_by="bob", comment="beam lost mid-LS",
                                  at=1.7e9 + 120))
        else:
            flags.append(LumiFlag(SOURCE, RUN, ls, True, "green", "", at=1.7e9))
    return flags
