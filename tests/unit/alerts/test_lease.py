"""One delivery worker per store: the lease, standby and take-over (real SQLite store)."""

from __future__ import annotations

import pytest

from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.lease import Lease
from hotline.alerts.outbox import install_outbox
from hotline.alerts.store import SQLiteAlertStore
from hotline.alerts.subscription_store import add_subscription
from hotline.errors import ConfigError
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_lease_is_exclusive_renewable_and_expires(tmp_path):
    store = SQLiteAlertStore(tmp_path / "a.db")
    clock = Clock()
    a = Lease(store, "deliver", "a", 10, clock)
    b = Lease(store, "deliver", "b", 10, clock)
    assert a.acquire() and not b.acquire()
    assert "held by a" in b.describe()
    clock.t += 8
    assert a.acquire()  # renewed: expires 10 s from now
    clock.t += 8
    assert not b.acquire()
    clock.t += 3  # a stopped renewing 11 s ago
    assert b.acquire() and not a.acquire()
    b.release()
    assert a.acquire()
    with pytest.raises(ConfigError):
        Lease(store, "deliver", "c", 0)


def test_standby_worker_forms_nothing_until_it_takes_over(tmp_path):
    store = SQLiteAlertStore(tmp_path / "a.db")
    install_outbox(store)
    allow_local_webhooks(store)
    add_subscription(store, owner="o", channel="webhook",
                     settings={"url": "http://127.0.0.1:9/h"})
    store.add_alerts(make_alerts(50, seed=3))
    clock = Clock()
    first = DeliveryWorker(store, threads=1, clock=clock, holder="first", lease_seconds=10)
    second = DeliveryWorker(store, threads=1, clock=clock, holder="second", lease_seconds=10)
    assert first.holds_lease() and not second.holds_lease()

    def queued() -> int:
        with store.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox WHERE message_id IS NULL")
            return int(cur.fetchone()[0])

    n0 = queued()
    assert n0 == 50
    second.step()
    assert queued() == n0  # the standby formed no notification
    clock.t += 11  # the first worker hangs: no renewal
    second._renew_at = 0.0
    assert second.holds_lease()
    second.collect()
    assert queued() < n0  # now it works the queue
    second.close(wait=False)
    first.close(wait=False)
