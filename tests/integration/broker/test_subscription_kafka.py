"""Subscription Kafka channel against the real test broker: one topic per subscription.

Matching alerts are produced to the subscription's topic as CloudEvents keyed by the
idempotency key; a broker restart while alerts are queued loses nothing.
"""

from __future__ import annotations

import json
import uuid

import pytest

from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import delivery_stats, install_outbox
from hotline.alerts.subscription_store import add_subscription
from tests.support.alerts import make_alerts

pytestmark = pytest.mark.broker


def _consume(bootstrap: str, topic: str, n: int, timeout_s: float = 30.0) -> list:
    import time

    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      group_id=f"t-{uuid.uuid4().hex[:8]}", consumer_timeout_ms=1000)
    out = []
    t_end = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < t_end:
            out.extend(c)
    finally:
        c.close()
    return out


def test_kafka_channel_delivers_cloudevents_per_subscription_topic(kafka_broker, store):
    install_outbox(store)
    topic = f"hotline.sub.test-{uuid.uuid4().hex[:8]}"
    s = add_subscription(store, owner="l1-trigger", channel="kafka",
                         settings={"bootstrap": kafka_broker.url, "topic": topic},
                         filter={"kinds": ["ae"], "max_p": 1e-4},
                         delivery={"storm_threshold": 1000, "timeout": 20,
                                   "backoff_base": 0.2, "backoff_max": 1})
    alerts = make_alerts(200, seed=71)
    store.add_alerts(alerts)
    want = {a.id for a in alerts if a.kind == "ae" and a.p_value <= 1e-4}
    assert len(want) > 5
    with DeliveryWorker(store, threads=4, poll=0.05) as w:
        w.run(until_idle=True, timeout=60)
    msgs = _consume(kafka_broker.bootstrap, topic, len(want))
    got = {}
    for m in msgs:
        event = json.loads(m.value)
        assert event["specversion"] == "1.0" and event["type"] == "org.hotline.alert.v1"
        assert m.key.decode() == event["id"] == dict(m.headers)["webhook-id"].decode()
        got[event["id"]] = event["data"]
    assert set(got) == want
    assert all(got[i]["id"] == i and got[i]["schema"] == 1 for i in got)
    assert delivery_stats(store, s.id)[s.id]["alerts_sent"] == len(want)


def test_kafka_channel_survives_broker_outage(kafka_broker, store):
    import time

    from hotline.alerts.outbox import delivery_log

    install_outbox(store)
    topic = f"hotline.sub.test-{uuid.uuid4().hex[:8]}"
    s = add_subscription(store, owner="l1-trigger", channel="kafka",
                         settings={"bootstrap": kafka_broker.url, "topic": topic},
                         delivery={"storm_threshold": 1000, "timeout": 3,
                                   "backoff_base": 0.2, "backoff_max": 1})
    alerts = make_alerts(30, seed=72)
    kafka_broker.stop()
    try:
        store.add_alerts(alerts)
        with DeliveryWorker(store, threads=4, poll=0.05) as w:
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end and not any(
                    d.attempts >= 1 and d.status == "pending"
                    for d in delivery_log(store, s.id, limit=100)):
                w.step()
            assert delivery_stats(store, s.id)[s.id]["sent"] == 0
            kafka_broker.start(timeout=90)
            w.run(until_idle=True, timeout=90)
    finally:
        if kafka_broker.proc is None or kafka_broker.proc.poll() is not None:
            kafka_broker.start(timeout=90)
    msgs = _consume(kafka_broker.bootstrap, topic, len(alerts))
    assert {json.loads(m.value)["id"] for m in msgs} == {a.id for a in alerts}
    st = delivery_stats(store, s.id)[s.id]
    assert st["alerts_sent"] == len(alerts) and st["retried"] >= 1
