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
