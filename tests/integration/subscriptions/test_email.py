"""E-mail channel against a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller

from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import delivery_log, install_outbox
from hotline.alerts.subscription_store import add_subscription
from tests.support.alerts import make_alerts


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.messages.append((envelope.rcpt_tos,
                              email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    yield inbox, port
    ctl.stop()


def test_email_plain_and_html_with_dashboard_links(store, smtp):
    inbox, port = smtp
    install_outbox(store)
    s = add_subscription(store, owner="muon-oncall", channel="email",
                         settings={"to": ["muon-oncall@example.org"], "smtp_host": "127.0.0.1",
                                   "smtp_port": port,
                                   "dashboard_url": "http://dash.example.org:5006/"},
                         filter={"kinds": ["dqm"], "subsystems": ["muon"]},
                         delivery={"storm_threshold": 1000})
    alerts = make_alerts(200, seed=31)
    store.add_alerts(alerts)
    want = [a for a in alerts if a.kind == "dqm" and a.payload["subsystem"] == "muon"]
    with DeliveryWorker(store, threads=2, poll=0.05) as w:
        w.run(until_idle=True, timeout=20)
    assert len(inbox.messages) == len(want) > 3
    keys = set()
    for rcpt, msg in inbox.messages:
        assert rcpt == ["muon-oncall@example.org"]
        key = msg["X-Hotline-Idempotency-Key"]
        keys.add(key)
        a = next(x for x in want if x.id == key)
        assert msg["Subject"].strip().startswith("[hotline] dqm alert dqm_occupancy: run")
        plain = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        link = f"http://dash.example.org:5006/?alert={a.id}"
        assert link in plain and f'href="{link}"' in html
        assert f"run {a.run} ls {a.lumi}" in plain and "<table" in html
    assert keys == {a.id for a in want}
    assert all(d.status == "sent" for d in delivery_log(store, s.id, limit=500))


def test_email_storm_summary(store, smtp):
    inbox, port = smtp
    install_outbox(store)
    add_subscription(store, owner="x", channel="email",
                     settings={"to": ["x@example.org"], "smtp_host": "127.0.0.1",
                               "smtp_port": port}, delivery={"storm_threshold": 20})
    store.add_alerts(make_alerts(120, seed=32))
    with DeliveryWorker(store, threads=2, poll=0.05) as w:
        w.run(until_idle=True, timeout=20)
    (_, msg), = inbox.messages
    assert msg["Subject"].strip().startswith("[hotline] alert storm: 120 alerts")
    assert "and 95 more" in msg.get_body(("plain",)).get_content()


def test_smtp_down_is_retried_then_delivered(store):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    install_outbox(store)
    sub = add_subscription(store, owner="x", channel="email",
                           settings={"to": ["x@example.org"], "smtp_host": "127.0.0.1",
                                     "smtp_port": port},
                           delivery={"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 2})
    store.add_alerts(make_alerts(1, seed=33))
    with DeliveryWorker(store, threads=2, poll=0.05) as w:
        for _ in range(40):
            w.step()
            if delivery_log(store, sub.id) and delivery_log(store, sub.id)[0].attempts >= 2:
                break
        (d,) = delivery_log(store, sub.id)
        assert d.status == "pending" and "ConnectionRefused" in d.last_error
        inbox = Inbox()
        ctl = Controller(inbox, hostname="127.0.0.1", port=port)
        ctl.start()
        try:
            w.run(until_idle=True, timeout=20)
        finally:
            ctl.stop()
    assert len(inbox.messages) == 1
    assert delivery_log(store, sub.id)[0].status == "sent"
