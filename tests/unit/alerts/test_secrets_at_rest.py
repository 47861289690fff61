"""Webhook signing secrets encrypted at rest (alerts.secrets_at_rest), on real SQLite stores.

Each test uses a key file of its own (``HOTLINE_SECRETS_KEY_FILE``), so rotating it never
touches the session's key.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from hotline.alerts import audit
from hotline.alerts.access import SYSTEM, AccessDenied, Actor
from hotline.alerts.backends import open_store
from hotline.alerts.channels.base import Notification
from hotline.alerts.channels.webhook import WebhookChannel
from hotline.alerts.secrets_at_rest import (
    KEY_ENV,
    KEY_FILE_ENV,
    generate_key,
    load_keys,
    rotate,
    rotate_key_file,
)
from hotline.alerts.subscription_store import (
    add_subscription,
    export_secret,
    get_subscription,
    list_subscriptions,
    pause_subscription,
    subscription_overview,
)
from hotline.alerts.subscriptions import new_secret
from hotline.errors import ConfigError
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks

ADMIN = Actor("ada", "admin", "cli")


@pytest.fixture
def key_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "keys" / "secrets.key"
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(path))
    return path


def _hook(store, secret=None):
    allow_local_webhooks(store)
    return add_subscription(store, owner="muon-oncall", channel="webhook",
                            settings={"url": "http://127.0.0.1:9/hook"}, secret=secret)


def _raw_secrets(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT id, secret FROM subscriptions").fetchall())
    finally:
        con.close()


def _db_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_secrets_are_not_readable_in_the_raw_database(tmp_path, key_file):
    db = tmp_path / "a.db"
    store = open_store(f"sqlite:///{db}")
    secret = new_secret()
    sub = _hook(store, secret)
    assert sub.secret == secret  # the caller gets it back once, in full
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored = _raw_secrets(db)[sub.id]
    assert stored.startswith("fernet:") and secret not in stored
    body = secret.removeprefix("whsec_").encode()
    assert body not in _db_bytes(db) and body[:12] not in _db_bytes(db)
    # the store API opens it with the key; listings and management leave it sealed
    assert get_subscription(store, sub.id).secret == secret == export_secret(store, sub.id)
    assert list_subscriptions(store)[0].secret == secret
    assert list_subscriptions(store, reveal=False)[0].secret == stored
    assert pause_subscription(store, sub.id).secret == stored
    assert secret not in str(subscription_overview(store))
    store.close()


def test_delivery_signs_with_the_opened_secret(tmp_path, key_file):
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    secret = new_secret()
    sub = _hook(store, secret)
    a = make_alerts(1, seed=4)[0]
    note = Notification(a.id, sub.id, [a])
    (loaded,) = list_subscriptions(store)  # what the delivery worker loads
    ch = WebhookChannel(loaded)
    event = Webhook(secret).verify(note.cloudevent_bytes(), ch.headers(note))
    assert event["id"] == a.id
    store.close()


def test_plain_text_secrets_of_an_older_store_are_sealed_when_opened(tmp_path, key_file):
    db = tmp_path / "old.db"
    store = open_store(f"sqlite:///{db}")
    secret = new_secret()
    sub = _hook(store, secret)
    store.close()
    con = sqlite3.connect(db)  # as a store written before encryption has it
    con.execute("UPDATE subscriptions SET secret = ?", (secret,))
    con.commit()
    con.close()
    assert _raw_secrets(db)[sub.id] == secret
    store = open_store(f"sqlite:///{db}")
    assert _raw_secrets(db)[sub.id].startswith("fernet:")
    assert get_subscription(store, sub.id).secret == secret
    (row,) = audit.entries(store, action="secrets_seal")
    assert (row.user, row.via, row.after["sealed"]) == ("hotline", "system", [sub.id])
    store.close()
    open_store(f"sqlite:///{db}").close()  # nothing left to seal: no second record
    store = open_store(f"sqlite:///{db}")
    assert audit.count(store, action="secrets_seal") == 1
    store.close()


def test_rotation_reseals_every_secret_under_a_new_key(tmp_path, key_file):
    db = tmp_path / "a.db"
    store = open_store(f"sqlite:///{db}")
    secrets = [new_secret() for _ in range(3)]
    subs = [_hook(store, s) for s in secrets]
    old_key, old_rows = key_file.read_text(), _raw_secrets(db)
    n0 = audit.count(store)
    # below admin: refused, nothing changed
    with pytest.raises(AccessDenied, match=r"'eve' \(expert\) may not secrets rotate"):
        rotate_key_file(store, Actor("eve", "expert"), None)
    assert key_file.read_text() == old_key and _raw_secrets(db) == old_rows
    assert audit.count(store) == n0 and not key_file.with_name("secrets.key.new").exists()
    n, where = rotate_key_file(store, ADMIN, None)
    assert (n, where) == (3, key_file) and key_file.read_text() != old_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    new_rows = _raw_secrets(db)
    assert all(new_rows[s.id] != old_rows[s.id] and new_rows[s.id].startswith("fernet:")
               for s in subs)
    assert [get_subscription(store, s.id).secret for s in subs] == secrets
    (row,) = audit.entries(store)[n0:]
    assert (row.user, row.role, row.action, row.after) == ("ada", "admin", "secrets_rotate",
                                                           {"resealed": 3})
    assert old_key.strip() not in str(row.before) and key_file.read_text().strip() not in str(
        row.after)
    # the old key opens nothing any more
    old = load_keys(environ={KEY_ENV: old_key.strip()})
    with pytest.raises(ConfigError, match="wrong key"):
        old.open(new_rows[subs[0].id])
    store.close()


def test_rotation_with_the_key_in_the_environment(tmp_path, monkeypatch):
    key = generate_key()
    monkeypatch.setenv(KEY_ENV, key)
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    secret = new_secret()
    sub = _hook(store, secret)
    with pytest.raises(ConfigError, match="give --new-key-file"):
        rotate_key_file(store, ADMIN, None)
    out = tmp_path / "new.key"
    assert rotate_key_file(store, ADMIN, out) == (1, out)
    with pytest.raises(ConfigError, match=f"\\${KEY_ENV}: wrong key"):
        get_subscription(store, sub.id)
    monkeypatch.setenv(KEY_ENV, out.read_text().strip())
    assert export_secret(store, sub.id) == secret
    # a rolling change: the new key first seals, the old one still opens
    monkeypatch.setenv(KEY_ENV, f"{generate_key()},{out.read_text().strip()}")
    assert export_secret(store, sub.id) == secret
    store.close()


def test_a_wrong_missing_or_malformed_key_is_one_line(tmp_path, key_file, monkeypatch):
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    sub = _hook(store)
    other = tmp_path / "other.key"
    other.write_text(generate_key() + "\n")
    other.chmod(0o600)
    monkeypatch.setenv(KEY_FILE_ENV, str(other))
    with pytest.raises(ConfigError) as err:
        get_subscription(store, sub.id)
    msg = str(err.value)
    assert "\n" not in msg and f"subscription {sub.id}" in msg and str(other) in msg
    assert "wrong key" in msg and KEY_FILE_ENV in msg and "rotate-secrets" in msg
    # ... and rotation stops before changing anything
    before = _raw_secrets(tmp_path / "a.db")
    with pytest.raises(ConfigError, match="wrong key"):
        rotate(store, ADMIN, generate_key())
    assert _raw_secrets(tmp_path / "a.db") == before
    # matching never needs the key: alerts are queued for the subscription all the same
    alerts = make_alerts(20, seed=5)
    store.add_alerts(alerts)
    with store.transaction() as cur:
        cur.execute("SELECT COUNT(*) FROM outbox WHERE sub_id = ?", (sub.id,))
        assert cur.fetchone()[0] == 20
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "absent.key"))
    with pytest.raises(ConfigError, match="cannot read the secrets key file .*absent.key"):
        export_secret(store, sub.id)
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match=f"secrets key in \\${KEY_ENV} is not a key"):
        export_secret(store, sub.id)
    store.close()


def test_no_key_anywhere_names_the_variables(tmp_path, monkeypatch):
    from hotline.alerts import secrets_at_rest

    monkeypatch.setenv(KEY_ENV, generate_key())
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    sub = _hook(store)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setattr(secrets_at_rest, "DEFAULT_KEY_FILE", tmp_path / "cfg" / "secrets.key")
    with pytest.raises(ConfigError, match=f"no secrets key was found \\({KEY_ENV}, "
                                          f"{KEY_FILE_ENV}, or .*cfg/secrets.key\\)"):
        get_subscription(store, sub.id)
    assert not (tmp_path / "cfg").exists()  # opening never makes a key
    # sealing does: the default key file, 0600
    _hook(store)
    assert stat.S_IMODE((tmp_path / "cfg" / "secrets.key").stat().st_mode) == 0o600
    store.close()


def test_rotate_checks_the_role_itself(tmp_path, key_file):
    # rotate() itself checks the role too (not only the file-level helper)
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    _hook(store)
    with pytest.raises(AccessDenied):
        rotate(store, Actor("sam", "shifter"), generate_key())
    assert rotate(store, SYSTEM, generate_key(), load_keys()) == 1
    store.close()
