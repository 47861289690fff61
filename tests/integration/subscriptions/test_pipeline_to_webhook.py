"""From a replayed archived run (real ROOT files) through the embedded pipeline to a webhook.

The alert store is opened with ``open_store`` (as every command does) and the outbox
installed; alerts written by ``run_embedded`` are delivered, signed, and only the
rules the subscription asked for.
"""

from __future__ import annotations

from hotline.alerts.backends import open_store
from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import install_outbox
from hotline.alerts.subscription_store import add_subscription
from hotline.alerts.subscriptions import new_secret
from hotline.stream.archive import find_run
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.replay import ReplaySource
from tests.support.outbound import allow_local_webhooks


def test_replayed_run_alerts_reach_the_subscriber(archive, tmp_path, receivers):
    store = open_store(f"sqlite:///{tmp_path / 'alerts.db'}")
    allow_local_webhooks(store)
    install_outbox(store)
    ctx = PipelineContext()
    r = receivers(new_secret()).start()
    # probe which rules fire on this run to subscribe to one of them
    with open_store(f"sqlite:///{tmp_path / 'probe.db'}") as probe:
        run_embedded(ReplaySource(find_run(archive, 7).files, branches=ctx.branches()),
                     ctx, probe)
        counts = probe.rule_counts()
    assert counts, "the test run raises no alerts"
    rule = max(counts, key=counts.get)
    add_subscription(store, owner="exotica", channel="webhook", settings={"url": r.url},
                     secret=r.secret, filter={"rules": [rule], "min_run": 7, "max_run": 7},
                     delivery={"storm_threshold": 10**6})
    run_embedded(ReplaySource(find_run(archive, 7).files, branches=ctx.branches()), ctx, store)
    with DeliveryWorker(store, threads=4, poll=0.05) as w:
        w.run(until_idle=True, timeout=30)
    want = {a.id for a in store.alerts(rule=rule)}
    assert r.alert_ids() == want and len(want) == counts[rule] and r.forged == 0
    assert all(ev["data"]["rule"] == rule and ev["data"]["run"] == 7 for _, ev in r.accepted)
    store.close()
