"""Grouping rule (storm control, rate-limit digest), retries, backoff and give-up.

Uses a small in-process channel registered like any user channel (``register_channel``)
and a controllable clock, so timing rules are tested exactly.
"""

from __future__ import annotations

import threading

import pytest

from hotline.alerts.channels import CHANNELS, register_channel
from hotline.alerts.channels.base import Channel, DeliveryError
from hotline.alerts.delivery import DeliveryWorker, group_id
from hotline.alerts.outbox import delivery_log, delivery_stats, install_outbox
from hotline.alerts.subscription_store import add_subscription, resume_subscription
from tests.support.alerts import make_alerts


class MemoryChannel(Channel):
    """Keeps notifications in a list; ``fail`` = errors to raise first (in order)."""

    name = "memory"
    boxes: dict[str, list] = {}
    failures: dict[str, list] = {}
    lock = threading.Lock()

    @classmethod
    def validate_settings(cls, settings):
        return dict(settings)

    def send(self, note, timeout):
        with self.lock:
            fails = self.failures.get(self.subscription.id, [])
            if fails:
                raise fails.pop(0)
            self.boxes.setdefault(self.subscription.id, []).append(note)


if "memory" not in CHANNELS:
    register_channel("memory", MemoryChannel)


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self):
        return self.t


def drain(w: DeliveryWorker) -> None:
    w.collect()
    w.submit_due()
    while w._inflight:
        w.record(wait=2.0)


@pytest.fixture
def setup(store):
    install_outbox(store)
    clock = Clock()
    w = DeliveryWorker(store, threads=2, clock=clock)
    yield store, clock, w
    w.close()


def _sub(store, **delivery):
    s = add_subscription(store, owner="t", channel="memory", settings={}, delivery=delivery)
    MemoryChannel.boxes[s.id] = []
    return s


def test_few_alerts_go_one_by_one_keyed_by_alert_id(setup):
    store, clock, w = setup
    s = _sub(store)
    alerts = make_alerts(5, seed=1)
    store.add_alerts(alerts)
    drain(w)
    notes = MemoryChannel.boxes[s.id]
    assert sorted(n.message_id for n in notes) == sorted(a.id for a in alerts)
    assert all(n.kind == "alert" and len(n.alerts) == 1 for n in notes)


def test_storm_is_grouped(setup):
    store, clock, w = setup
    s = _sub(store, storm_threshold=20, max_group=40)
    alerts = make_alerts(100, seed=2)
    store.add_alerts(alerts)
    drain(w)
    notes = MemoryChannel.boxes[s.id]
    assert [len(n.alerts) for n in notes] == [40, 40, 20]
    assert all(n.kind == "group" and n.reason == "storm" for n in notes)
    assert {a.id for n in notes for a in n.alerts} == {a.id for a in alerts}
    n0 = notes[0]
    assert n0.message_id == group_id(s.id, [a.id for a in n0.alerts])
    summ = n0.summary()
    assert summ["count"] == 40 and sum(summ["rules"].values()) == 40
    assert "alert storm: 40 alerts" in n0.title()


def test_a_lasting_storm_gives_one_message_per_window(setup):
    store, clock, w = setup
    s = _sub(store, storm_threshold=20, storm_window=60)
    batches = [make_alerts(50, seed=100 + i) for i in range(10)]
    for batch in batches:  # a fault lights up every event for 100 s
        store.add_alerts(batch)
        drain(w)
        clock.t += 10
    notes = MemoryChannel.boxes[s.id]
    assert [len(n.alerts) for n in notes] == [50, 300]  # t=0 and t=60 (batches 1..6)
    clock.t += 60
    drain(w)
    assert [len(n.alerts) for n in notes] == [50, 300, 150]
    assert all(n.reason == "storm" for n in notes)
    # the storm is over: later alerts go one by one again
    clock.t += 200
    store.add_alerts(make_alerts(2, seed=99))
    drain(w)
    assert [n.kind for n in notes[3:]] == ["alert", "alert"]
    assert {a.id for n in notes for a in n.alerts} == {a.id for b in batches for a in b} | {
        a.id for a in make_alerts(2, seed=99)}


def test_rate_limit_sends_a_digest_when_the_window_opens(setup):
    store, clock, w = setup
    s = _sub(store, max_messages=1, per_seconds=300)
    first, later = make_alerts(1, seed=3), make_alerts(7, seed=4)
    store.add_alerts(first)
    drain(w)
    store.add_alerts(later)
    clock.t += 100
    drain(w)
    assert len(MemoryChannel.boxes[s.id]) == 1  # still inside the 5-minute window
    assert delivery_stats(store)[s.id]["queued"] == 7
    clock.t += 201
    drain(w)
    notes = MemoryChannel.boxes[s.id]
    assert len(notes) == 2 and notes[1].reason == "digest" and len(notes[1].alerts) == 7


def test_retries_with_backoff_then_success(setup):
    store, clock, w = setup
    s = _sub(store, backoff_base=2, backoff_max=10, give_up_after=1000)
    MemoryChannel.failures[s.id] = [DeliveryError("HTTP 500")] * 4
    a = make_alerts(1, seed=5)
    store.add_alerts(a)
    delays = []
    drain(w)
    for _ in range(4):
        (d,) = delivery_log(store, s.id)
        assert d.status == "pending" and d.last_error == "HTTP 500"
        delays.append(d.next_at - clock.t)
        drain(w)  # not due yet: nothing happens
        assert delivery_log(store, s.id)[0].attempts == d.attempts
        clock.t = d.next_at
        drain(w)
    (d,) = delivery_log(store, s.id)
    assert d.status == "sent" and d.attempts == 5 and d.message_id == a[0].id
    # exponential with jitter in [0.5, 1) and capped at backoff_max
    for k, dt in enumerate(delays):
        cap = min(10, 2 * 2**k)
        assert 0.5 * cap <= dt < cap
    st = delivery_stats(store)[s.id]
    assert st["sent"] == 1 and st["retried"] == 1 and st["attempts"] == 5


def test_gives_up_visibly_and_can_be_requeued(setup):
    store, clock, w = setup
    s = _sub(store, backoff_base=1, backoff_max=5, give_up_after=30)
    MemoryChannel.failures[s.id] = [DeliveryError("connection refused")] * 1000
    store.add_alerts(make_alerts(1, seed=6))
    for _ in range(60):
        drain(w)
        (d,) = delivery_log(store, s.id)
        if d.status != "pending":
            break
        clock.t = d.next_at
    assert d.status == "failed" and d.last_error == "connection refused" and d.attempts > 3
    assert d.last_attempt - d.first_attempt <= 30 + 1e-6
    MemoryChannel.failures[s.id] = []
    resume_subscription(store, s.id, retry_failed=True)
    drain(w)
    assert delivery_log(store, s.id)[0].status == "sent"


def test_non_retryable_error_fails_at_once(setup):
    store, clock, w = setup
    s = _sub(store)
    MemoryChannel.failures[s.id] = [DeliveryError("HTTP 400", retryable=False)]
    store.add_alerts(make_alerts(1, seed=7))
    drain(w)
    (d,) = delivery_log(store, s.id)
    assert d.status == "failed" and d.attempts == 1


def test_paused_holds_then_delivers(setup):
    store, clock, w = setup
    s = _sub(store)
    from hotline.alerts.subscription_store import pause_subscription

    pause_subscription(store, s.id)
    store.add_alerts(make_alerts(3, seed=8))
    drain(w)
    assert MemoryChannel.boxes[s.id] == []
    resume_subscription(store, s.id)
    drain(w)
    assert len(MemoryChannel.boxes[s.id]) == 3
