"""Encrypted signing secrets over the wire: a real receiver verifies every delivery before
and after `hotline access rotate-secrets`; a delivery worker with the wrong key stops in one
line before sending anything."""

from __future__ import annotations

import sqlite3

from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import delivery_stats
from hotline.alerts.secrets_at_rest import KEY_ENV, KEY_FILE_ENV, generate_key
from hotline.alerts.store import SQLiteAlertStore
from hotline.alerts.subscription_store import add_subscription
from hotline.alerts.subscriptions import new_secret
from hotline.cli import main
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks

FAST = {"backoff_base": 0.05, "backoff_max": 0.3, "timeout": 2.0, "give_up_after": 30}


def _stored_secret(db, sub_id):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT secret FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()[0]
    finally:
        con.close()


def test_deliveries_verify_before_and_after_rotation(tmp_path, receivers, capsys, monkeypatch):
    key_file = tmp_path / "secrets.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    db = tmp_path / "alerts.db"
    store = SQLiteAlertStore(db)
    secret = new_secret()
    r = receivers(secret).start()
    allow_local_webhooks(store)
    sub = add_subscription(store, owner="muon", channel="webhook", settings={"url": r.url},
                           secret=secret, delivery={**FAST, "storm_threshold": 10_000})
    sealed = _stored_secret(db, sub.id)
    assert sealed.startswith("fernet:") and secret not in sealed

    first = make_alerts(5, seed=31)
    store.add_alerts(first)
    with DeliveryWorker(store, threads=2, poll=0.05) as w:
        w.run(until_idle=True, timeout=20)
    assert r.forged == 0 and r.alert_ids() == {a.id for a in first}

    assert main(["access", "rotate-secrets", "--store", f"sqlite:///{db}"]) == 0
    capsys.readouterr()
    assert _stored_secret(db, sub.id) not in (sealed, secret)

    second = make_alerts(5, seed=32)
    store.add_alerts(second)
    rc = main(["deliver", "--until-idle", "--poll", "0.05", "--max-seconds", "30",
               "--store", f"sqlite:///{db}"])
    assert rc == 0, capsys.readouterr().err
    assert r.forged == 0 and r.alert_ids() == {a.id for a in first + second}

    # another host's key: the worker stops in one line, nothing is sent or failed
    third = make_alerts(3, seed=33)
    store.add_alerts(third)
    capsys.readouterr()
    monkeypatch.setenv(KEY_ENV, generate_key())
    rc = main(["deliver", "--until-idle", "--poll", "0.05", "--max-seconds", "30",
               "--store", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert rc == 2 and "wrong key" in err and f"subscription {sub.id}" in err
    assert [ln for ln in err.splitlines() if "error" in ln] == [err.splitlines()[-1]]
    assert r.alert_ids() == {a.id for a in first + second}
    st = delivery_stats(store, sub.id)[sub.id]
    assert st["failed"] == 0 and st["queued"] == 3
    store.close()
