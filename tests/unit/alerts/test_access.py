"""Roles x write actions at the write functions (real SQLite), the role mapping, the audit log."""

from __future__ import annotations

import io
import json

import pytest

from hotline.alerts import audit
from hotline.alerts.access import (
    ACTIONS,
    ROLES,
    SYSTEM,
    AccessDenied,
    Actor,
    allowed,
    grant,
    grants,
    require,
    resolve_role,
    revoke,
)
from hotline.alerts.backends import open_store
from hotline.errors import ConfigError, StoreError
from tests.support.access import ALERT, WRITES, prepared_store, snapshot

EXPECTED = {  # the issue's policy, written out: who may do what
    "guest": set(),
    "shifter": {"ack_alert", "ack_flag", "assess_run"},
    "expert": {"ack_alert", "ack_flag", "assess_run", "override_flags", "set_reference",
               "subscription_add", "subscription_pause", "subscription_resume",
               "subscription_remove", "subscription_update", "subscription_secret",
               "audit_read"},
}
EXPECTED["admin"] = set(ACTIONS)


@pytest.mark.parametrize("role", ROLES)
def test_policy_matches_the_issue(role):
    assert {a for a in ACTIONS if allowed(role, a)} == EXPECTED[role]
    for action in ACTIONS:
        actor = Actor("someone", role)
        if action in EXPECTED[role]:
            require(actor, action)
        else:
            with pytest.raises(AccessDenied, match=f"'someone' \\({role}\\) may not"):
                require(actor, action)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_at_every_store_write(role, tmp_path):
    """Each role x each write function: allowed -> done and exactly one audit record;
    refused -> AccessDenied, nothing changed, no audit record."""
    store, sub = prepared_store(tmp_path / f"{role}.db")
    actor = Actor(f"{role}-user", role, "cli")
    for action, write in WRITES.items():  # in order (the subscription is removed last)
        before, n0 = snapshot(store), audit.count(store)
        if allowed(role, action):
            write(store, actor, sub)
            rows = audit.entries(store)[n0:]
            assert [(e.user, e.role, e.action) for e in rows] == [
                (actor.user, role, action)], (action, role)
            if action != "subscription_secret":
                assert snapshot(store) != before, (action, role)
        else:
            with pytest.raises(AccessDenied):
                write(store, actor, sub)
            assert snapshot(store) == before and audit.count(store) == n0, (action, role)
    store.close()


def test_audit_rows_carry_before_and_after(tmp_path):
    store, sub = prepared_store(tmp_path / "a.db")
    alice = Actor("alice", "expert", "dashboard")
    WRITES["override_flags"](store, alice, sub)
    WRITES["subscription_pause"](store, alice, sub)
    e_override, e_pause = audit.entries(store, user="alice")
    assert e_override.action == "override_flags" and e_override.target == "hotline/run 2"
    assert e_override.before == {"3": None, "4": None}  # never assessed before
    assert e_override.after["3"] == {"good": False, "level": "idle", "decided_by": "alice",
                                     "comment": "HV trip in HCAL"}
    assert (e_pause.before, e_pause.after) == ({"paused": False}, {"paused": True})
    assert e_pause.via == "dashboard" and e_pause.at >= e_override.at
    # the override is stored under the actor's name, never a name passed along
    from hotline.alerts.certification import flags

    assert {f.decided_by for f in flags(store, 2) if f.lumi in (3, 4)} == {"alice"}


def test_acknowledgements_are_stored_and_audited_under_the_actor(tmp_path):
    from hotline.alerts.acknowledgements import acknowledgements

    store, sub = prepared_store(tmp_path / "a.db")
    sara, eric = Actor("sara", "shifter", "dashboard"), Actor("eric", "expert", "cli")
    for actor in (sara, eric):
        WRITES["ack_alert"](store, actor, sub)
        WRITES["ack_flag"](store, actor, sub)
    # the name typed by the caller is ignored: the rows carry the actor's
    assert [(a.acked_by, a.lumis) for a in acknowledgements(store, 2)] == [
        ("sara", "LS 9"), ("sara", "LS 8-10"), ("sara", "LS 12"),
        ("eric", "LS 9"), ("eric", "LS 8-10"), ("eric", "LS 12")]
    a1, a2 = audit.entries(store, action="ack_alert")
    assert (a1.user, a1.role, a1.via, a1.target) == ("sara", "shifter", "dashboard", ALERT.id)
    assert a1.before is None and a1.after["acked_by"] == "sara"
    assert "met250" in a1.after["what"] and a1.after["comment"] == "MET spike seen, HCAL noise"
    assert a2.before == a1.after and a2.after["acked_by"] == "eric"
    f1, f2 = audit.entries(store, action="ack_flag")  # one record per write, all ranges
    assert f1.target == "hotline/run 2" and f1.before is None
    assert [r["lumis"] for r in f1.after] == ["LS 8-10", "LS 12"]
    assert f2.before == f1.after and {r["acked_by"] for r in f2.after} == {"eric"}
    # bad input with an actor: one line, nothing stored, nothing audited
    n = audit.count(store)
    with pytest.raises(ConfigError, match="needs a comment"):
        from hotline.alerts.acknowledgements import acknowledge_alert

        acknowledge_alert(store, ALERT, "", "  ", actor=sara)
    assert audit.count(store) == n and len(acknowledgements(store, 2)) == 6
    store.close()


def test_audit_log_is_append_only_in_the_database(tmp_path):
    store, _ = prepared_store(tmp_path / "a.db")
    n = audit.count(store)
    assert n >= 1  # the prepared grant
    for sql in ("UPDATE audit_log SET user_name = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(StoreError, match="append-only"):
            with store.transaction() as cur:
                cur.execute(sql)
    assert audit.count(store) == n and {e.user for e in audit.entries(store)} == {"hotline"}


def test_audit_export_jsonl_and_csv(tmp_path):
    store, sub = prepared_store(tmp_path / "a.db")
    WRITES["subscription_pause"](store, Actor("bob", "expert"), sub)
    out = io.StringIO()
    assert audit.export_jsonl(store, out, user="bob") == 1
    row = json.loads(out.getvalue())
    assert (row["user"], row["action"], row["after"]) == ("bob", "subscription_pause",
                                                          {"paused": True})
    out = io.StringIO()
    assert audit.export_csv(store, out) == audit.count(store)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("seq,at_utc,user,role") and len(lines) == 1 + audit.count(store)
    # many rows page through short transactions
    for i in range(7):
        grant(store, SYSTEM, "user", f"u{i}", "guest")
    assert [e.seq for e in audit.iter_entries(store, page_size=3)] == [
        e.seq for e in audit.entries(store)]


def test_role_mapping_users_groups_and_the_open_store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    # open store: local identities are admins, single-sign-on ones are guests
    assert resolve_role(store, "alice", ["x"], local=True)[0] == "admin"
    assert resolve_role(store, "alice", ["x"], local=False)[0] == "guest"
    grant(store, SYSTEM, "group", "cms-hotline-shifters", "shifter")
    grant(store, SYSTEM, "group", "cms-hotline-experts", "expert")
    grant(store, SYSTEM, "user", "carol", "admin")
    assert resolve_role(store, "alice", ["x"], local=True) == (
        "guest", "no role granted to user 'alice' or its groups")
    assert resolve_role(store, "bob", ["cms-hotline-shifters"])[0] == "shifter"
    role, why = resolve_role(store, "bob", ["cms-hotline-shifters", "cms-hotline-experts"])
    assert role == "expert" and "cms-hotline-experts" in why  # the highest wins
    assert resolve_role(store, "carol", [])[0] == "admin"
    grant(store, SYSTEM, "group", "cms-hotline-experts", "shifter")  # changed, not added
    assert resolve_role(store, "bob", ["cms-hotline-experts"])[0] == "shifter"
    assert len(grants(store)) == 3
    revoke(store, SYSTEM, "user", "carol")
    assert resolve_role(store, "carol", [])[0] == "guest"
    with pytest.raises(ConfigError, match="no role is granted to user 'carol'"):
        revoke(store, SYSTEM, "user", "carol")
    with pytest.raises(ConfigError, match="unknown role 'boss'"):
        grant(store, SYSTEM, "user", "dave", "boss")
    with pytest.raises(ConfigError, match="empty or contains spaces"):
        grant(store, SYSTEM, "group", "two words", "guest")
    assert [e.action for e in audit.entries(store)] == [
        "access_grant"] * 4 + ["access_revoke"]
    store.close()
