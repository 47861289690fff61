"""Access control on both backends: the audit log is append-only in the database itself,
role grants and the webhook allow-list round-trip, a refused write leaves nothing."""

from __future__ import annotations

import pytest

from hotline.alerts import audit
from hotline.alerts.access import SYSTEM, AccessDenied, Actor, grant, grants, resolve_role
from hotline.alerts.outbound import load_policy, set_allow_list
from hotline.alerts.subscription_store import add_subscription, pause_subscription
from hotline.errors import StoreError


def test_audit_log_append_only_and_roles(any_store):
    store = any_store
    grant(store, SYSTEM, "group", "cms-hotline-experts", "expert")
    set_allow_list(store, SYSTEM, ["*", "10.1.0.0/16"])
    assert load_policy(store).entries == ["*", "10.1.0.0/16"]
    eric = Actor("eric", resolve_role(store, "eric", ["cms-hotline-experts"])[0], "dashboard")
    assert eric.role == "expert" and len(grants(store)) == 1
    sub = add_subscription(store, owner="o", channel="email", settings={"to": ["o@x.org"]},
                           actor=eric)
    pause_subscription(store, sub.id, actor=eric)
    with pytest.raises(AccessDenied):
        pause_subscription(store, sub.id, actor=Actor("sara", "shifter", "dashboard"))
    rows = audit.entries(store)
    assert [(e.user, e.action) for e in rows] == [
        ("hotline", "access_grant"), ("hotline", "config_set"), ("eric", "subscription_add"),
        ("eric", "subscription_pause")]
    assert rows[-1].before == {"paused": False} and rows[-1].after == {"paused": True}
    sqls = ["UPDATE audit_log SET user_name = 'mallory'", "DELETE FROM audit_log"]
    if store.ph == "%s":  # PostgreSQL
        sqls.append("TRUNCATE audit_log")
    for sql in sqls:
        with pytest.raises(StoreError, match="append-only"):
            with store.transaction() as cur:
                cur.execute(sql)
    assert audit.count(store) == 4 and audit.count(store, user="mallory") == 0


def test_acknowledgements_audited_and_secrets_sealed(any_store, tmp_path, monkeypatch):
    """Acknowledgements with their audit row in one transaction; signing secrets sealed,
    plain-text ones sealed when the schema is ensured (store opening), rotated."""
    from hotline.alerts.acknowledgements import acknowledge_alert, acknowledge_lumis
    from hotline.alerts.records import AlertRecord
    from hotline.alerts.secrets_at_rest import KEY_ENV, KEY_FILE_ENV, rotate_key_file
    from hotline.alerts.subscription_store import export_secret
    from hotline.alerts.subscriptions import ensure_schema, new_secret

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "secrets.key"))
    store = any_store
    a = AlertRecord.make(kind="classic", rule="met250", source="hotline", run=4, lumi=2,
                         event=7, payload={})
    store.add_alerts([a])
    sara = Actor("sara", "shifter", "dashboard")
    acknowledge_alert(store, a, "x", "MET spike", actor=sara)
    acknowledge_lumis(store, "hotline", 4, [1, 2, 5], "x", "HV trip", actor=sara)
    with pytest.raises(AccessDenied):
        acknowledge_lumis(store, "hotline", 4, [3], "x", "no", actor=Actor("gus", "guest"))
    assert [(e.user, e.action) for e in audit.entries(store)] == [("sara", "ack_alert"),
                                                                   ("sara", "ack_flag")]
    secret = new_secret()
    sub = add_subscription(store, owner="o", channel="email", settings={"to": ["o@x.org"]},
                           secret=secret)

    def stored() -> str:
        with store.transaction() as cur:
            cur.execute(f"SELECT secret FROM subscriptions WHERE id = {store.ph}", (sub.id,))
            return cur.fetchone()[0]

    assert stored().startswith("fernet:") and export_secret(store, sub.id) == secret
    with store.transaction() as cur:  # as a store written before encryption
        cur.execute(f"UPDATE subscriptions SET secret = {store.ph}", (secret,))
    ensure_schema(store)
    assert stored().startswith("fernet:") and audit.count(store, action="secrets_seal") == 1
    before = stored()
    assert rotate_key_file(store, Actor("ada", "admin"))[0] == 1
    assert stored() != before and export_secret(store, sub.id) == secret
    assert audit.entries(store)[-1].action == "secrets_rotate"
