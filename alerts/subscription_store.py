"""Stored alert subscriptions: add, list, get, pause, resume, remove, export the secret.

The management functions used by ``hotline subscribe`` and by the dashboard. Each works on an
SQL alert store (``SQLAlertStore``), whose subscription and outbox tables exist from the moment
it is opened; the model, filters and matching are ``alerts.subscriptions``. Secrets are
stored sealed (``alerts.secrets_at_rest``); ``get_subscription`` / ``list_subscriptions``
open them unless ``reveal=False``, and the management functions that never need them
(pause, resume, remove, update, the overview) leave them sealed in what they return.

Every change takes the ``Actor`` making it (``alerts.access``; the dashboard and the CLI
always pass one): the role is checked before anything is written and one ``alerts.audit``
row (the subscription's safe fields before and after) is written in the same transaction as
the change. A new webhook's URL must pass the store's outbound policy
(``alerts.outbound``: allow-list; private, loopback and link-local addresses refused).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import replace
from typing import Any

from hotline.alerts.access import Actor, require
from hotline.alerts.audit import append as audit_append
from hotline.alerts.channels import get_channel
from hotline.alerts.outbox import delivery_stats, install_outbox, last_errors, requeue_failed
from hotline.alerts.secrets_at_rest import seal
from hotline.alerts.subscriptions import (
    SECRET_PREFIX,
    SUBSCRIPTION_COLUMNS,
    DeliverySettings,
    Subscription,
    SubscriptionFilter,
    _row_sub,
    new_secret,
)
from hotline.errors import ConfigError, StoreError


def add_subscription(
    store: Any,
    *,
    owner: str,
    channel: str,
    settings: dict[str, Any],
    filter: SubscriptionFilter | dict[str, Any] | None = None,  # noqa: A002
    delivery: DeliverySettings | dict[str, Any] | None = None,
    name: str = "",
    secret: str | None = None,
    paused: bool = False,
    actor: Actor | None = None,
) -> Subscription:
    """Validate and store a new subscription; returns it (with its full secret)."""
    if actor is not None:
        require(actor, "subscription_add")
    install_outbox(store)
    if not owner or not owner.strip():
        raise ConfigError("a subscription needs an owner (who to ask about it)")
    flt = filter if isinstance(filter, SubscriptionFilter) else SubscriptionFilter.from_dict(
        filter or {})
    flt.validate()
    dl = delivery if isinstance(delivery, DeliverySettings) else DeliverySettings.from_dict(
        delivery or {})
    settings = get_channel(channel).validate_settings(dict(settings))
    if channel == "webhook":
        from hotline.alerts.outbound import check_url, load_policy

        check_url(settings["url"], load_policy(store), strict_dns=False)
    if secret is None:
        secret = new_secret()
    elif not secret.startswith(SECRET_PREFIX):
        raise ConfigError("a webhook secret must start with 'whsec_' followed by base64")
    else:
        try:
            if not base64.b64decode(secret[len(SECRET_PREFIX):] + "==", validate=False):
                raise ValueError
        except ValueError:
            raise ConfigError("the webhook secret after 'whsec_' is not valid base64") from None
    now = time.time()
    sub = Subscription(
        id="sub_" + uuid.uuid4().hex[:12], owner=owner.strip(), name=name or channel,
        filter=flt, channel=channel, settings=settings, secret=secret, delivery=dl,
        paused=paused, created=now, updated=now,
    )
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(
            f"INSERT INTO subscriptions ({','.join(SUBSCRIPTION_COLUMNS)}) "
            f"VALUES ({','.join([ph] * len(SUBSCRIPTION_COLUMNS))})",
            (sub.id, sub.owner, sub.name, json.dumps(flt.to_dict()), channel,
             json.dumps(settings), seal(secret), json.dumps(dl.to_dict()), int(paused), now,
             now),
        )
        if actor is not None:
            audit_append(cur, store, actor, "subscription_add", sub.id, None, _audit_view(sub))
    return sub


def _audit_view(sub: Subscription) -> dict[str, Any]:
    """A subscription as the audit log keeps it: safe fields only (secret redacted)."""
    d = sub.public_dict()
    return {k: d[k] for k in ("owner", "name", "channel", "settings", "filter", "delivery",
                              "paused", "secret")}


def list_subscriptions(store: Any, owner: str | None = None,
                       include_paused: bool = True, reveal: bool = True) -> list[Subscription]:
    """The stored subscriptions (oldest first); their secrets opened if ``reveal`` (needs the
    secrets key), else left sealed."""

    install_outbox(store)
    sql = f"SELECT {','.join(SUBSCRIPTION_COLUMNS)} FROM subscriptions"
    clauses, args = [], []
    if owner is not None:
        clauses.append(f"owner = {store.ph}")
        args.append(owner)
    if not include_paused:
        clauses.append("paused = 0")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    with store.transaction() as cur:
        cur.execute(sql + " ORDER BY created, id", args)
        return [_row_sub(r, reveal) for r in cur.fetchall()]


def get_subscription(store: Any, sub_id: str, reveal: bool = True) -> Subscription:
    """One stored subscription; its secret opened if ``reveal`` (needs the secrets key)."""

    install_outbox(store)
    with store.transaction() as cur:
        cur.execute(f"SELECT {','.join(SUBSCRIPTION_COLUMNS)} FROM subscriptions "
                    f"WHERE id = {store.ph}", [sub_id])
        row = cur.fetchone()
    if row is None:
        raise StoreError(f"no subscription '{sub_id}' in {store.url}; "
                         "see `hotline subscribe list`")
    return _row_sub(row, reveal)


def _set_paused(store: Any, sub_id: str, paused: bool, actor: Actor | None,
                action: str, extra: dict[str, Any] | None = None) -> Subscription:
    if actor is not None:
        require(actor, action)
    before = get_subscription(store, sub_id, reveal=False)
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(f"UPDATE subscriptions SET paused = {ph}, updated = {ph} WHERE id = {ph}",
                    [int(paused), time.time(), sub_id])
        if actor is not None:
            audit_append(cur, store, actor, action, sub_id, {"paused": before.paused},
                         {"paused": paused, **(extra or {})})
    return get_subscription(store, sub_id, reveal=False)


def pause_subscription(store: Any, sub_id: str, actor: Actor | None = None) -> Subscription:
    """Hold deliveries; matching alerts keep queueing and go out (grouped) on resume."""
    return _set_paused(store, sub_id, True, actor, "subscription_pause")


def resume_subscription(store: Any, sub_id: str, retry_failed: bool = False,
                        actor: Actor | None = None) -> Subscription:
    """Deliver again; with ``retry_failed`` also re-queue notifications that gave up."""
    sub = _set_paused(store, sub_id, False, actor, "subscription_resume",
                      {"retry_failed": retry_failed})
    if retry_failed:

        requeue_failed(store, sub_id)
    return sub


def remove_subscription(store: Any, sub_id: str, actor: Actor | None = None) -> None:
    """Delete the subscription, its queued alerts and its delivery log."""
    if actor is not None:
        require(actor, "subscription_remove")
    before = get_subscription(store, sub_id, reveal=False)
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(f"DELETE FROM outbox WHERE sub_id = {ph}", [sub_id])
        cur.execute(f"DELETE FROM deliveries WHERE sub_id = {ph}", [sub_id])
        cur.execute(f"DELETE FROM subscriptions WHERE id = {ph}", [sub_id])
        if actor is not None:
            audit_append(cur, store, actor, "subscription_remove", sub_id,
                         _audit_view(before), None)


def export_secret(store: Any, sub_id: str, actor: Actor | None = None) -> str:
    """The full ``whsec_`` secret, for handing to the receiver (write it to a 0600 file).

    With ``actor``: role checked (``subscription_secret``) and the export audited (the
    secret itself is never written to the log)."""
    if actor is not None:
        require(actor, "subscription_secret")
    secret = get_subscription(store, sub_id).secret
    if actor is not None:
        from hotline.alerts.audit import record

        record(store, actor, "subscription_secret", sub_id, None, {"exported": True})
    return secret


def subscription_overview(store: Any, owner: str | None = None) -> list[dict[str, Any]]:
    """For tables (dashboard, CLI): each subscription's safe fields plus its delivery counts
    (messages sent/failed/pending/retried, attempts, alerts sent/failed/queued) and last error.
    """

    stats = delivery_stats(store)
    out = []
    for s in list_subscriptions(store, owner=owner, reveal=False):
        d = s.public_dict()
        d["target"] = s.target()
        d["filter_text"] = s.filter.describe()
        d["stats"] = stats.get(s.id, {})
        d["last_error"] = last_errors(store, s.id)
        out.append(d)
    return out


def update_delivery_settings(store: Any, sub_id: str, actor: Actor | None = None,
                             **changes: Any) -> Subscription:
    """Change storm / rate-limit / timeout settings of a subscription."""
    if actor is not None:
        require(actor, "subscription_update")
    sub = get_subscription(store, sub_id, reveal=False)
    dl = DeliverySettings.from_dict({**sub.delivery.to_dict(), **changes})
    with store.transaction() as cur:
        cur.execute(f"UPDATE subscriptions SET delivery = {store.ph}, updated = {store.ph} "
                    f"WHERE id = {store.ph}", [json.dumps(dl.to_dict()), time.time(), sub_id])
        if actor is not None:
            audit_append(cur, store, actor, "subscription_update", sub_id,
                         sub.delivery.to_dict(), dl.to_dict())
    return replace(sub, delivery=dl)


__all__ = [
    "add_subscription", "export_secret", "get_subscription", "list_subscriptions",
    "pause_subscription", "remove_subscription", "resume_subscription", "subscription_overview",
    "update_delivery_settings",
]
