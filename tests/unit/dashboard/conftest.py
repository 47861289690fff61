"""Dashboard fixtures: a real SQLite store filled with summaries and classic + AE-like alerts."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.dashboard.model_info import Threshold
from hotline.stream.pipeline import score_histogram

AE_RULE = "ae_test"
THRESHOLDS = [Threshold(1e-2, 3.0), Threshold(1e-3, 10.0)]


def make_page(store, tmp_path, user, basic_auth="pw", alert=None):
    """A page of a hub over ``store`` (no replay), as ``user``, with ``THRESHOLDS``."""
    from hotline.config import load_config
    from hotline.dashboard.app import create_page
    from hotline.dashboard.hub import build_hub

    cfg = load_config(environ={}, cli={"store": {"url": store.url},
                                       "dashboard": {"basic_auth": basic_auth},
                                       "source": {"archive": str(tmp_path)}})
    hub = build_hub(cfg, store=store, replay=False)
    hub.feed.min_interval = 0.0
    hub.thresholds = list(THRESHOLDS)
    return create_page(hub, user=user, alert=alert)


def ae_alert(run: int, lumi: int, event: int, score: float = 25.0, created: float = 1000.0,
             p: float = 1e-4) -> AlertRecord:
    objects = [["met", 180.0, 0.0, 1.2], ["e1", 45.0, 0.3, -2.0], ["mu1", 120.0, -1.1, 0.4],
               ["j1", 310.0, 2.1, -0.7], ["j2", 60.0, -3.2, 2.9]]
    contrib = {"objects": {"met": 3.0, "e1": 0.5, "mu1": 12.0, "j1": 8.0, "j2": 1.5},
               "types": {"MET": 3.0, "electrons": 0.5, "muons": 12.0, "jets": 9.5}}
    return AlertRecord.make(kind="ae", rule=AE_RULE, source="hotline", run=run, lumi=lumi,
                            event=event, score=score, p_value=p,
                            payload={"objects": objects, "contributions": contrib},
                            created=created)


def classic_alert(run: int, lumi: int, event: int, created: float = 1000.0) -> AlertRecord:
    return AlertRecord.make(kind="classic", rule="met250", source="hotline", run=run, lumi=lumi,
                            event=event, payload={"objects": [["met", 300.0, 0.0, -1.0],
                                                              ["j1", 90.0, 0.5, 2.0]]},
                            created=created)


def lumi_summary(run: int, lumi: int, n: int = 2000, seed: int = 0, shift: float = 1.0,
                 met_count: int = 20) -> LumiSummary:
    rng = np.random.default_rng(seed + 1000 * run + lumi)
    scores = rng.exponential(1.0, n) * shift
    s = LumiSummary("hotline", run, lumi, n_events=n, n_bad=0)
    s.rule_counts = {"met250": met_count, AE_RULE: int((scores > 10).sum())}
    s.score_hist = {AE_RULE: score_histogram(scores)}
    return s


@pytest.fixture
def filled_store(store):
    """Run 1 (reference, 3 LS) and run 2 (5 LS), one AE + one classic alert per LS of run 2."""
    store.upsert_summaries([lumi_summary(1, ls) for ls in range(1, 4)])
    store.upsert_summaries([lumi_summary(2, ls) for ls in range(1, 6)])
    alerts = []
    for ls in range(1, 6):
        alerts.append(ae_alert(2, ls, 100 + ls, score=20.0 + ls, created=1000.0 + ls))
        alerts.append(classic_alert(2, ls, 200 + ls, created=1000.5 + ls))
    store.add_alerts(alerts)
    return store
