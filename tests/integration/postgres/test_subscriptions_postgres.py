"""Subscriptions, outbox and delivery worker on a real PostgreSQL server (same SQL as SQLite)."""

from __future__ import annotations

import time

import pytest

from hotline.alerts.backends import open_store
from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import delivery_log, delivery_stats, install_outbox
from hotline.alerts.subscription_store import (
    add_subscription,
    list_subscriptions,
    pause_subscription,
    remove_subscription,
    resume_subscription,
)
from hotline.alerts.subscriptions import new_secret
from tests.integration.subscriptions.receivers import Receiver
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks

pytestmark = pytest.mark.postgres


def test_outbox_and_delivery_on_postgres(pg_url):
    store = open_store(pg_url)
    allow_local_webhooks(store)
    install_outbox(store)
    r = Receiver(new_secret(), fail_first=2).start()
    try:
        s = add_subscription(store, owner="trigger", channel="webhook",
                             settings={"url": r.url}, secret=r.secret,
                             filter={"kinds": ["ae"], "max_p": 1e-3},
                             delivery={"backoff_base": 0.05, "backoff_max": 0.2,
                                       "storm_threshold": 1000})
        other = add_subscription(store, owner="x", channel="webhook",
                                 settings={"url": "http://127.0.0.1:9/"})
        pause_subscription(store, other.id)

        def crash(cur, new):
            raise RuntimeError("writer died")

        store.on_new_alerts.append(crash)
        with pytest.raises(RuntimeError):
            store.add_alerts(make_alerts(20, seed=61))
        store.on_new_alerts.remove(crash)
        assert store.count_alerts() == 0 and delivery_stats(store) == {}

        alerts = make_alerts(300, seed=62)
        for i in range(0, 300, 10):
            store.add_alerts(alerts[i: i + 10])
        store.add_alerts(alerts)  # duplicates: nothing new queued
        want = {a.id for a in alerts if a.kind == "ae" and a.p_value <= 1e-3}
        # first worker stops half-way (a restart), the second finishes
        w1 = DeliveryWorker(store, threads=4, poll=0.05)
        t_end = time.monotonic() + 20
        while len(r.ids()) < 5 and time.monotonic() < t_end:
            w1.step()
        assert 5 <= len(r.ids()) < len(want)
        w1.close()
        with DeliveryWorker(store, threads=4, poll=0.05) as w2:
            w2.run(until_idle=True, timeout=30)
        assert r.alert_ids() == want and r.forged == 0
        st = delivery_stats(store)
        assert st[s.id]["alerts_sent"] == len(want) and st[s.id]["retried"] >= 1
        assert st[other.id]["queued"] == 300  # paused: held in the outbox
        assert all(d.status == "sent" for d in delivery_log(store, s.id, limit=1000))
        resume_subscription(store, other.id)
        remove_subscription(store, other.id)
        assert [x.id for x in list_subscriptions(store)] == [s.id]
    finally:
        r.stop()
        store.close()
