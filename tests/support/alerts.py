"""Random but reproducible alert records for subscription tests and benchmarks."""

from __future__ import annotations

import numpy as np

from hotline.alerts.records import AlertRecord

RULES = ["ae_p1e-4", "ae_p1e-3", "dimuon_high_mass", "single_e_200", "met_500", "dqm_occupancy"]
SUBSYSTEMS = ["muon", "ecal", "hcal", "tracker"]
TYPES = ["MET", "electrons", "muons", "jets"]
UNITS = {"muon": ["DT_W+1_S4", "DT_W-2_S7", "CSC_ME+1_1", "RPC_RB1"],
         "ecal": ["EB+03", "EE-07"], "hcal": ["HB+12", "HE-02"], "tracker": ["TIB_L1"]}


def make_alerts(n: int, seed: int = 0, run0: int = 300000, source: str = "hotline",
                created: float | None = None) -> list[AlertRecord]:
    rng = np.random.default_rng(seed)
    types = np.random.default_rng([seed, 1])  # AE attribution: its own stream, old draws unchanged
    out = []
    kinds = rng.choice(["classic", "ae", "dqm"], n)
    for i in range(n):
        kind = str(kinds[i])
        payload: dict = {}
        p = None
        if kind == "ae":
            p = float(10 ** rng.uniform(-6, -2))
            rule = str(rng.choice(RULES[:2]))
            top = str(types.choice(TYPES))
            payload = {"top_type": top}
            if types.random() < 0.7:  # MET followed to a visible type, or the top type itself
                payload["explained_by"] = str(types.choice(TYPES[1:])) if top == "MET" else top
        elif kind == "dqm":
            sub = str(rng.choice(SUBSYSTEMS))
            k = min(int(rng.integers(1, 3)), len(UNITS[sub]))
            units = rng.choice(UNITS[sub], k, replace=False)
            if rng.random() < 0.5:
                payload = {"subsystem": sub, "units": [str(u) for u in units]}
            else:  # as the DQM conv-AE pipeline writes them
                payload = {"subsystem": sub, "top_units": [
                    {"level": "chamber", "unit": str(u), "contribution": 0.5} for u in units]}
            p = float(10 ** rng.uniform(-8, -1))
            rule = "dqm_occupancy"
        else:
            rule = str(rng.choice(RULES[2:5]))
        if rng.random() < 0.3:
            payload["tags"] = [str(rng.choice(["calib", "physics", "cosmics"]))]
        out.append(AlertRecord.make(
            kind=kind, rule=rule, source=source, run=run0 + int(rng.integers(0, 20)),
            lumi=int(rng.integers(1, 500)), event=seed * 10_000_000 + i,
            score=float(rng.exponential(1)), p_value=p, payload=payload, created=created))
    return out
