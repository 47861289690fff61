"""The transactional outbox: which alert is owed to which subscription, and the delivery log.

:func:`install_outbox` creates the tables and registers a hook on
``store.on_new_alerts``. ``SQLAlertStore.add_alerts`` calls the hook with the
insert cursor INSIDE the alert-insert transaction, so an alert and its outbox
rows are committed together or not at all: a crash can never leave an alert
that no subscriber will hear about, nor an outbox row without its alert.

Tables (plain SQL, placeholders from ``store.ph``; works on SQLite and PostgreSQL):

- ``outbox (seq, sub_id, alert_id, created, message_id)``: one row per (subscription,
  matching alert); ``message_id`` is NULL until the delivery worker puts the alert into
  a notification. Unique on (sub_id, alert_id): re-processing never queues twice.
- ``deliveries``: one row per notification (one alert, or a group/digest), the
  per-subscription delivery log: status pending|sent|failed, attempts, first/last
  attempt, next attempt, last error. ``message_id`` is the idempotency key sent as
  ``webhook-id`` (the alert id for single-alert notifications).

- ``storm_outbox (sub_id, source, run, lumi, rule, created, message_id)``: one pending
  storm notice per (subscription, storm) of the storm guard (``alerts.storms``), written in
  the transaction that stores the storm record; a later record of the same storm makes it
  pending again (the delivery worker then sends the updated counts).

Storm records (``store.add_storms``) are matched here too. A subscription that keeps the
guard (``DeliverySettings.storm_guard``, the default) gets a storm notice when its
``kinds`` / ``rules`` / ``sources`` / run range match the storm's rule (the other filter
parts - p-value, significance, payload fields - cannot be judged on a storm: they are not
applied). A subscription that opts out gets the listed alerts themselves: they are built
from the storm record (``StormRecord.listed_alerts``), matched with its full filter, stored
in the alerts table and queued for it (and only for it) in the same transaction.

Paused subscriptions keep queueing (nothing is lost); they are delivered on resume.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hotline.alerts.records import AlertRecord
from hotline.alerts.storms import StormRecord
from hotline.alerts.subscriptions import (
    SUBSCRIPTION_COLUMNS,
    SubscriptionMatcher,
    _row_sub,
    ensure_schema,
)

log = logging.getLogger(__name__)

OUTBOX_SCHEMA_SQL = [
    """CREATE TABLE IF NOT EXISTS outbox (
        seq {autoinc}, sub_id TEXT NOT NULL, alert_id TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, message_id TEXT,
        UNIQUE (sub_id, alert_id))""",
    "CREATE INDEX IF NOT EXISTS outbox_unassigned ON outbox (seq) WHERE message_id IS NULL",
    """CREATE TABLE IF NOT EXISTS deliveries (
        sub_id TEXT NOT NULL, message_id TEXT NOT NULL, kind TEXT NOT NULL,
        reason TEXT NOT NULL, n_alerts INTEGER NOT NULL, alert_ids TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL, first_attempt DOUBLE PRECISION,
        last_attempt DOUBLE PRECISION, next_at DOUBLE PRECISION NOT NULL,
        sent_at DOUBLE PRECISION, last_error TEXT,
        PRIMARY KEY (sub_id, message_id))""",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at)",
    "CREATE INDEX IF NOT EXISTS deliveries_sub ON deliveries (sub_id, created)",
    "CREATE INDEX IF NOT EXISTS deliveries_storm ON deliveries (sub_id, reason, created)",
    """CREATE TABLE IF NOT EXISTS storm_outbox (
        sub_id TEXT NOT NULL, source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL,
        rule TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, message_id TEXT,
        PRIMARY KEY (sub_id, source, run, lumi, rule))""",
]

DELIVERY_COLUMNS = (
    "sub_id", "message_id", "kind", "reason", "n_alerts", "alert_ids", "status", "attempts",
    "created", "first_attempt", "last_attempt", "next_at", "sent_at", "last_error",
)


@dataclass
class Delivery:
    """One notification to one subscription (a row of the delivery log)."""

    sub_id: str
    message_id: str
    kind: str  #: alert | group | storm (a storm notice of the storm guard)
    reason: str  #: single | storm | digest | storm_guard
    n_alerts: int
    #: the alerts of the notification; for kind storm, the storm's [source, run, lumi, rule]
    alert_ids: list[Any]
    status: str  #: pending | sent | failed
    attempts: int
    created: float
    first_attempt: float | None
    last_attempt: float | None
    next_at: float
    sent_at: float | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Delivery:
        d = dict(zip(DELIVERY_COLUMNS, row))
        d["alert_ids"] = json.loads(d["alert_ids"])
        return cls(**d)


class _OutboxHook:
    """Matches new alerts against the subscriptions and writes outbox rows (same cursor)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._version: tuple | None = None
        self._matcher = SubscriptionMatcher([])

    def _refresh(self, cur: Any) -> None:
        cur.execute("SELECT COUNT(*), MAX(updated) FROM subscriptions")
        version = tuple(cur.fetchone())
        if version != self._version:
            cur.execute(f"SELECT {','.join(SUBSCRIPTION_COLUMNS)} FROM subscriptions")
            self._matcher = SubscriptionMatcher([_row_sub(r, reveal=False)
                                                 for r in cur.fetchall()])
            self._version = version

    def __call__(self, cur: Any, new: list[AlertRecord]) -> None:
        self._refresh(cur)
        if not self._matcher.subscriptions:
            return
        now = time.time()
        ids = [r.id for r in new]
        rows: list[tuple[str, str, float]] = []
        for sub_id, idx in self._matcher.match(new):
            rows.extend((sub_id, ids[i], now) for i in idx.tolist())
        if rows:
            ph = self.store.ph
            cur.executemany(
                f"INSERT INTO outbox (sub_id, alert_id, created) VALUES ({ph},{ph},{ph}) "
                "ON CONFLICT (sub_id, alert_id) DO NOTHING",
                rows,
            )
            log.debug("outbox: queued %d deliveries for %d new alerts", len(rows), len(new))


    def storms(self, cur: Any, records: list[StormRecord]) -> None:
        """Storm notices for the subscriptions that keep the guard, the listed alerts for
        those that opted out (module docstring)."""
        self._refresh(cur)
        subs = self._matcher.subscriptions
        if not subs:
            return
        now = time.time()
        ph = self.store.ph
        notices = []
        every = [s for s in subs if not s.delivery.storm_guard]
        for r in records:
            for sub in subs:
                if sub.delivery.storm_guard and storm_matches(sub.filter, r):
                    notices.append((sub.id, r.source, r.run, r.lumi, r.rule, now))
        if notices:
            cur.executemany(
                "INSERT INTO storm_outbox (sub_id, source, run, lumi, rule, created) VALUES "
                f"({','.join([ph] * 6)}) ON CONFLICT (sub_id, source, run, lumi, rule) DO "
                "UPDATE SET created = excluded.created, message_id = NULL", notices)
        if not every:
            return
        listed = [a for r in records for a in r.listed_alerts()]
        rows: list[tuple[str, str, float]] = []
        wanted: dict[str, AlertRecord] = {}
        for sub_id, idx in SubscriptionMatcher(every).match(listed):
            for i in idx.tolist():
                wanted[listed[i].id] = listed[i]
                rows.append((sub_id, listed[i].id, now))
        if rows:
            self.store.insert_alert_rows(cur, list(wanted.values()))
            cur.executemany(
                f"INSERT INTO outbox (sub_id, alert_id, created) VALUES ({ph},{ph},{ph}) "
                "ON CONFLICT (sub_id, alert_id) DO NOTHING", rows)


def storm_matches(f: Any, storm: StormRecord) -> bool:
    """Whether a storm concerns a subscription filter: its kinds, rules, sources and run
    range (the parts a storm can be judged on)."""
    return ((not f.kinds or storm.kind in f.kinds) and (not f.rules or storm.rule in f.rules)
            and (not f.sources or storm.source in f.sources)
            and (f.min_run is None or storm.run >= f.min_run)
            and (f.max_run is None or storm.run <= f.max_run))


def install_outbox(store: Any) -> None:
    """Create subscription/outbox tables and hook the outbox into ``store.add_alerts``.

    Idempotent: calling it again on the same store object does nothing.
    """
    if getattr(store, "_hotline_outbox_hook", None) is not None:
        return
    if not hasattr(store, "on_new_alerts") or not hasattr(store, "transaction"):
        from hotline.errors import StoreError

        raise StoreError(f"alert store {getattr(store, 'url', store)!r} does not support "
                         "subscriptions (needs an SQL store with on_new_alerts hooks)")
    ensure_schema(store)
    with store.transaction() as cur:
        for stmt in OUTBOX_SCHEMA_SQL:
            cur.execute(stmt.format(autoinc=store.autoinc, blob=store.blob))
    hook = _OutboxHook(store)
    store._hotline_outbox_hook = hook
    store.on_new_alerts.append(hook)
    if hasattr(store, "on_new_storms"):
        store.on_new_storms.append(hook.storms)


def requeue_failed(store: Any, sub_id: str) -> int:
    """Put notifications that gave up back in the queue (fresh give-up clock)."""
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(
            "UPDATE deliveries SET status = 'pending', first_attempt = NULL, next_at = 0 "
            f"WHERE sub_id = {ph} AND status = 'failed'", [sub_id])
        return int(cur.rowcount or 0)


def delivery_log(store: Any, sub_id: str, limit: int = 50,
                 status: str | None = None) -> list[Delivery]:
    """Newest notifications of one subscription first."""
    install_outbox(store)
    ph = store.ph
    sql = f"SELECT {','.join(DELIVERY_COLUMNS)} FROM deliveries WHERE sub_id = {ph}"
    args: list[Any] = [sub_id]
    if status:
        sql += f" AND status = {ph}"
        args.append(status)
    sql += f" ORDER BY created DESC, message_id LIMIT {int(limit)}"
    with store.transaction() as cur:
        cur.execute(sql, args)
        return [Delivery.from_row(r) for r in cur.fetchall()]


def delivery_stats(store: Any, sub_id: str | None = None) -> dict[str, dict[str, int]]:
    """Per subscription: notifications sent/failed/pending, retried, attempts, alerts queued."""
    install_outbox(store)
    ph = store.ph
    where, args = ("", []) if sub_id is None else (f" WHERE sub_id = {ph}", [sub_id])
    out: dict[str, dict[str, int]] = {}

    def slot(s: str) -> dict[str, int]:
        return out.setdefault(s, {"sent": 0, "failed": 0, "pending": 0, "retried": 0,
                                  "attempts": 0, "alerts_sent": 0, "alerts_failed": 0,
                                  "queued": 0})

    with store.transaction() as cur:
        cur.execute(
            "SELECT sub_id, status, COUNT(*), SUM(attempts), SUM(n_alerts), "
            f"SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) FROM deliveries{where} "
            "GROUP BY sub_id, status", args)
        for s, status, n, att, nal, retried in cur.fetchall():
            d = slot(s)
            d[status] = d.get(status, 0) + int(n)
            d["attempts"] += int(att or 0)
            d["retried"] += int(retried or 0)
            if status in ("sent", "failed"):
                d[f"alerts_{status}"] += int(nal or 0)
        w2 = " WHERE message_id IS NULL" + ("" if sub_id is None else f" AND sub_id = {ph}")
        cur.execute(f"SELECT sub_id, COUNT(*) FROM outbox{w2} GROUP BY sub_id", args)
        for s, n in cur.fetchall():
            slot(s)["queued"] = int(n)
    return out


def last_errors(store: Any, sub_id: str) -> str | None:
    """The most recent delivery error of a subscription (None if none)."""
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(f"SELECT last_error FROM deliveries WHERE sub_id = {ph} AND last_error "
                    "IS NOT NULL ORDER BY last_attempt DESC LIMIT 1", [sub_id])
        row = cur.fetchone()
    return row[0] if row else None


__all__ = ["Delivery", "delivery_log", "delivery_stats", "install_outbox", "requeue_failed"]
