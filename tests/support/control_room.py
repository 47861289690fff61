"""A control-room alert store: many lumisections, many alerts of every kind, a hot cell.

``fill_control_room(store, run, n_lumis, n_alerts)`` writes, through the store's normal
API (real SQLite or PostgreSQL), ``n_lumis`` lumisection summaries of ``run`` (classic-rule
counts and AE score histograms, exponential scores; lumisections ``HOT_LUMIS`` with a
tenfold ``met250`` rate and a shifted score tail) and ``n_alerts`` alerts: classic ones
(met250 with its MET object, ht300 with jets, 2mu_pt15 with muons), AE ones with
contributions, and per hot lumisection two DQM alerts shaped as ``stream.dqm_pipeline``
writes them (a calorimeter map with a hot card and a muon map with a dead chamber, both
with the p-value at the reference's floor). The objects of the hot lumisections' alerts
cluster in one eta-phi cell (``HOT_CELL``) so the alert map has a cell that jumps out.
Used by the dashboard's browser tests and ``benchmarks/bench_dashboard.py``.
"""

from __future__ import annotations

import numpy as np

from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.stream.pipeline import score_histogram

AE_RULE = "ae_test"
#: AE thresholds at the exact quantiles of the summaries' exponential(1) scores
THRESHOLDS_EXACT = ((1e-2, 4.605170185988091), (1e-3, 6.907755278982137))
HOT_CELL = (1.6, 2.4)  #: (eta, phi) where the hot lumisections' objects cluster
DQM_FLOOR = 2.0e-6  #: the p-value floor of the synthetic DQM alerts


def hot_lumis(n_lumis: int) -> list[int]:
    """The faulty lumisections: a block of three in the second third of the run."""
    first = max(2, (2 * n_lumis) // 3)
    return [ls for ls in (first, first + 1, first + 2) if ls <= n_lumis]


def _summary(run: int, lumi: int, n: int, hot: bool, rng: np.random.Generator) -> LumiSummary:
    scores = rng.exponential(1.0, n) * (1.6 if hot else 1.0)
    s = LumiSummary("hotline", run, lumi, n_events=n, n_bad=int(hot) * 3)
    s.rule_counts = {"met250": int(rng.poisson(80 if hot else 20)),
                     "ht300": int(rng.poisson(60)), "2mu_pt15": int(rng.poisson(30)),
                     AE_RULE: int((scores > 10).sum())}
    s.score_hist = {AE_RULE: score_histogram(scores)}
    return s


def _dqm_payloads() -> list[dict]:
    from hotline.detectors.geometry import get_geometry

    out = []
    for sub, unit_level, unit in (("calo_regions", "card", "card 05.11"),
                                  ("muon_barrel", "chamber", "W+1 S03 MB2")):
        geo = get_geometry(sub)
        h, w = geo.shape
        rng = np.random.default_rng(len(sub))
        occ = rng.uniform(0.5, 1.5, (h, w))
        loss = rng.uniform(0.0, 0.1, (h, w))
        lv = geo.level(unit_level)
        cells = lv.cells(lv.names.index(unit))
        occ.ravel()[cells] = 0.0 if sub == "muon_barrel" else 9.0
        loss.ravel()[cells] = 5.0
        out.append({
            "subsystem": sub, "title": geo.title, "model": f"conv_{sub} v1",
            "n_events": 20000, "threshold": 1.5, "alert_p_value": 1e-3, "p_floor": DQM_FLOOR,
            "top_units": [{"level": unit_level, "unit": unit, "contribution": 0.62,
                           "loss": 40.0, "log10_p": 872.0}],
            "summary": f"{unit_level} {unit}", "shape": [h, w], "rows": list(geo.built.row_labels),
            "cols": list(geo.built.col_labels), "map": np.round(occ, 3).tolist(),
            "loss": np.round(loss, 3).tolist()})
    return out


def make_control_room_alerts(run: int, n_lumis: int, n_alerts: int, seed: int = 3,
                             t0: float = 1.7e9) -> list[AlertRecord]:
    """The alerts of ``fill_control_room`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    hot = set(hot_lumis(n_lumis))
    lumis = rng.integers(1, n_lumis + 1, n_alerts)
    kinds = rng.choice(["met250", "ht300", "2mu_pt15", "ae"], n_alerts, p=[.3, .2, .2, .3])
    out: list[AlertRecord] = []
    for i in range(n_alerts):
        ls, kind = int(lumis[i]), str(kinds[i])
        if ls in hot:
            eta = HOT_CELL[0] + rng.normal(0, 0.05)
            phi = HOT_CELL[1] + rng.normal(0, 0.05)
        else:
            eta, phi = rng.uniform(-2.4, 2.4), rng.uniform(-np.pi, np.pi)
        t = t0 + ls * 23.0 + i * 1e-4
        e2, p2 = round(float(rng.uniform(-2.4, 2.4)), 3), round(float(rng.uniform(-3, 3)), 3)
        met = [["met", round(260 + float(rng.exponential(80)), 1), 0.0,
                round(float(rng.uniform(-3, 3)), 3)]]
        if kind == "met250":
            objs = met + [["j1", 90.0, round(eta, 3), round(phi, 3)]]
            out.append(AlertRecord.make(kind="classic", rule="met250", source="hotline",
                                        run=run, lumi=ls, event=i, payload={"objects": objs},
                                        created=t))
        elif kind == "ht300":
            objs = [["j1", 240.0, round(eta, 3), round(phi, 3)], ["j2", 110.0, e2, p2],
                    ["j3", 25.0, -e2, -p2]]
            out.append(AlertRecord.make(kind="classic", rule="ht300", source="hotline",
                                        run=run, lumi=ls, event=i, payload={"objects": objs},
                                        created=t))
        elif kind == "2mu_pt15":
            objs = [["mu1", 40.0, round(eta, 3), round(phi, 3)], ["mu2", 22.0, e2, p2]]
            out.append(AlertRecord.make(kind="classic", rule="2mu_pt15", source="hotline",
                                        run=run, lumi=ls, event=i, payload={"objects": objs},
                                        created=t))
        else:
            objs = met + [["mu1", 120.0, round(eta, 3), round(phi, 3)],
                          ["j1", 310.0, e2, p2]]
            contrib = {"objects": {"met": 3.0, "mu1": 12.0, "j1": 8.0},
                       "types": {"MET": 3.0, "muons": 12.0, "jets": 8.0}}
            out.append(AlertRecord.make(
                kind="ae", rule=AE_RULE, source="hotline", run=run, lumi=ls, event=i,
                score=float(12 + rng.exponential(5)), p_value=float(10 ** rng.uniform(-6, -4)),
                payload={"objects": objs, "contributions": contrib, "explained_by": "muons"},
                created=t))
    for ls in sorted(hot):
        for k, payload in enumerate(_dqm_payloads()):
            out.append(AlertRecord.make(kind="dqm", rule=f"dqm_{payload['subsystem']}",
                                        source="hotline", run=run, lumi=ls, event=0,
                                        score=9.0, p_value=DQM_FLOOR,
                                        payload={**payload, "run": run, "lumi": ls},
                                        created=t0 + ls * 23.0 + 20 + k))
    return out


def fill_control_room(store, run: int = 300, n_lumis: int = 200, n_alerts: int = 2000,
                      events_per_lumi: int = 4000, seed: int = 3,
                      chunk: int = 5000) -> list[AlertRecord]:
    """Write the summaries and alerts (see the module docstring); returns the alerts."""
    rng = np.random.default_rng(seed)
    hot = set(hot_lumis(n_lumis))
    store.upsert_summaries([_summary(run, ls, events_per_lumi, ls in hot, rng)
                            for ls in range(1, n_lumis + 1)])
    alerts = make_control_room_alerts(run, n_lumis, n_alerts, seed)
    for k in range(0, len(alerts), chunk):
        store.add_alerts(alerts[k:k + chunk])
    return alerts
