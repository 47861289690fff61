"""The webhook body is a CloudEvents 1.0 envelope and the headers verify with standardwebhooks."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hotline.alerts.channels.base import Notification
from hotline.alerts.channels.webhook import WebhookChannel, verify_webhook
from hotline.alerts.records import AlertRecord
from hotline.alerts.subscriptions import Subscription, SubscriptionFilter, new_secret
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks


def _sub(secret):
    return Subscription(id="sub_1", owner="t", name="", filter=SubscriptionFilter(),
                        channel="webhook", settings={"url": "http://127.0.0.1:9/x"},
                        secret=secret)


def test_single_alert_envelope_and_signature():
    secret = new_secret()
    a = make_alerts(1, seed=9)[0]
    note = Notification(a.id, "sub_1", [a])
    ch = WebhookChannel(_sub(secret))
    body = note.cloudevent_bytes()
    headers = ch.headers(note)
    assert headers["webhook-id"] == a.id
    event = Webhook(secret).verify(body, headers)
    assert event["specversion"] == "1.0" and event["id"] == a.id
    assert event["type"] == "org.hotline.alert.v1"
    # the data is exactly the versioned alert record
    assert AlertRecord.from_dict(event["data"]) == a
    parsed = JSONFormat().read(None, body)
    assert parsed.get_id() == a.id and parsed.get_source() == f"/hotline/{a.source}"
    assert verify_webhook(secret, body, headers)["data"]["id"] == a.id


def test_forged_or_stale_requests_are_rejected():
    secret = new_secret()
    a = make_alerts(1, seed=10)[0]
    note = Notification(a.id, "sub_1", [a])
    ch = WebhookChannel(_sub(secret))
    body = note.cloudevent_bytes()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new_secret(), body, ch.headers(note))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, body.replace(b'"run"', b'"Run"'), ch.headers(note))
    old = datetime.now(UTC) - timedelta(minutes=10)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(secret, body, ch.headers(note, now=old))


def test_group_envelope():
    alerts = make_alerts(30, seed=11)
    note = Notification("grp_x", "sub_1", alerts, kind="group", reason="storm")
    event = json.loads(note.cloudevent_bytes())
    assert event["type"] == "org.hotline.alert.group.v1"
    assert event["data"]["count"] == 30 and len(event["data"]["alerts"]) == 30
    assert event["data"]["summary"]["count"] == 30


def test_secret_never_logged_on_failure(caplog, store):
    from hotline.alerts.delivery import DeliveryWorker
    from hotline.alerts.subscription_store import add_subscription

    allow_local_webhooks(store)
    s = add_subscription(store, owner="x", channel="webhook",
                         settings={"url": "http://127.0.0.1:9/hook?token=SECRET-TOKEN"},
                         delivery={"give_up_after": 0, "timeout": 1})
    store.add_alerts(make_alerts(2, seed=12))
    with caplog.at_level(logging.DEBUG):
        with DeliveryWorker(store, threads=2, poll=0.01) as w:
            w.run(until_idle=True, timeout=10)
    text = caplog.text
    assert "giving up" in text
    assert s.secret not in text and s.secret.removeprefix("whsec_") not in text
    assert "SECRET-TOKEN" not in text
