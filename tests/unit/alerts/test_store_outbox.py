"""Subscriptions in the alert store and the transactional outbox (real SQLite file)."""

from __future__ import annotations

import pytest

from hotline.alerts.outbox import delivery_stats, install_outbox
from hotline.alerts.subscription_store import (
    add_subscription,
    export_secret,
    get_subscription,
    list_subscriptions,
    pause_subscription,
    remove_subscription,
    resume_subscription,
    subscription_overview,
)
from hotline.alerts.subscriptions import alert_units, redact_secret, validate_webhook_url
from hotline.errors import ConfigError, StoreError
from tests.support.alerts import make_alerts


def _outbox(store):
    with store.transaction() as cur:
        cur.execute("SELECT sub_id, alert_id FROM outbox")
        return set(cur.fetchall())


def test_crud_and_redaction(store):
    s = add_subscription(store, owner="trigger-expert", channel="webhook",
                         settings={"url": "https://ex.org/h?token=abc"},
                         filter={"kinds": ["ae"], "max_p": 1e-4})
    assert s.secret.startswith("whsec_") and len(s.secret) > 40
    assert export_secret(store, s.id) == s.secret
    pub = s.public_dict()
    assert s.secret not in repr(s) and s.secret not in str(pub)
    assert pub["secret"] == redact_secret(s.secret) == "whsec_…"
    assert "abc" not in str(pub)  # query strings may hold tokens
    assert [x.id for x in list_subscriptions(store)] == [s.id]
    (ov,) = subscription_overview(store)
    assert ov["id"] == s.id and ov["target"] == "https://ex.org/h" and ov["stats"] == {}
    assert s.secret not in str(ov) and "abc" not in str(ov)
    assert pause_subscription(store, s.id).paused
    assert not resume_subscription(store, s.id).paused
    remove_subscription(store, s.id)
    with pytest.raises(StoreError, match="no subscription"):
        get_subscription(store, s.id)


@pytest.mark.parametrize("url", ["ftp://h/x", "http://user:pw@h/x", "https://tok@h/x",
                                 "http:///nohost", "javascript:alert(1)", "http://h/x#frag",
                                 "http://h /x", ""])
def test_webhook_url_validation(url):
    with pytest.raises(ConfigError):
        validate_webhook_url(url)


def test_bad_channel_settings(store):
    with pytest.raises(ConfigError, match="unknown delivery channel"):
        add_subscription(store, owner="x", channel="pigeon", settings={})
    with pytest.raises(ConfigError, match="password_env"):
        add_subscription(store, owner="x", channel="email",
                         settings={"to": ["a@b.c"], "password": "hunter2"})
    with pytest.raises(ConfigError, match="e-mail address"):
        add_subscription(store, owner="x", channel="email", settings={"to": ["a@b.c\nBcc: x@y"]})
    with pytest.raises(ConfigError, match="whsec_"):
        add_subscription(store, owner="x", channel="webhook", settings={"url": "http://h/"},
                         secret="plain")
    assert list_subscriptions(store) == []


def test_outbox_rows_match_filters_and_are_not_duplicated(store):
    install_outbox(store)
    ae = add_subscription(store, owner="a", channel="webhook", settings={"url": "http://h/"},
                          filter={"kinds": ["ae"], "max_p": 1e-4})
    muon = add_subscription(store, owner="m", channel="webhook", settings={"url": "http://h/"},
                            filter={"kinds": ["dqm"], "units": ["DT_*"]}, paused=True)
    alerts = make_alerts(400, seed=2)
    store.add_alerts(alerts)
    store.add_alerts(alerts)  # re-processing the same data: no new alerts, no new outbox rows
    rows = _outbox(store)
    want = {(ae.id, a.id) for a in alerts if a.kind == "ae" and a.p_value <= 1e-4}
    want |= {(muon.id, a.id) for a in alerts
             if a.kind == "dqm" and any(u.startswith("DT_") for u in alert_units(a.payload))}
    assert rows == want and len(want) > 20
    # paused subscriptions keep queueing: nothing is lost while paused
    assert delivery_stats(store)[muon.id]["queued"] > 0


def test_outbox_is_written_in_the_alert_transaction(store):
    install_outbox(store)
    add_subscription(store, owner="a", channel="webhook", settings={"url": "http://h/"})

    def crash(cur, new):
        raise RuntimeError("writer died after the outbox hook")

    store.on_new_alerts.append(crash)
    with pytest.raises(RuntimeError):
        store.add_alerts(make_alerts(10, seed=3))
    store.on_new_alerts.remove(crash)
    assert store.count_alerts() == 0 and _outbox(store) == set()  # both rolled back together
    store.add_alerts(make_alerts(10, seed=3))
    assert store.count_alerts() == 10 and len(_outbox(store)) == 10


def test_install_is_idempotent(store):
    install_outbox(store)
    install_outbox(store)
    add_subscription(store, owner="a", channel="webhook", settings={"url": "http://h/"})
    store.add_alerts(make_alerts(5, seed=4))
    assert len(_outbox(store)) == 5
