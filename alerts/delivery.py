"""The delivery worker: outbox -> notifications -> channels, at least once, across restarts.

Everything the worker knows lives in the alert store (``outbox`` and ``deliveries``
tables, see ``alerts.outbox``), so a worker that is killed at any point resumes
exactly where the database says: notifications already formed are re-sent with
the SAME idempotency key (``webhook-id``), queued alerts are formed into
notifications, nothing is lost. A notification that reached the receiver just
before the kill is sent again (at-least-once); receivers de-duplicate on the key.

Grouping rule (storm control and rate limit), per subscription, each time the
worker collects queued alerts (every ``poll`` seconds, default 0.5 s):

1. Let ``n`` be the number of queued alerts of the subscription and ``b`` the
   messages still allowed by its rate limit (``max_messages`` per ``per_seconds``
   counted over notifications created in the last window; unlimited if
   ``max_messages`` is 0). If ``b`` is 0, the alerts wait.
2. **Storm**: if ``n >= storm_threshold`` (default 20) the alerts go out as grouped
   notifications of up to ``max_group`` (default 500) alerts each, oldest first,
   with a summary (counts per rule, runs, lumisection span, most significant alert).
   While the storm lasts, i.e. for ``storm_window`` seconds (default 60) after a storm
   notification, new alerts are held; when the window has passed they go out as one
   more storm notification (even if fewer than ``storm_threshold``, as long as there
   are at least 2 and the last storm notification is less than 2 windows old). A fault
   that lights up every event for an hour thus gives about one message per minute.
3. **Digest**: otherwise, if ``n > b`` (more alerts than the rate limit allows
   messages), the alerts go out as one grouped notification (reason ``digest``).
4. Otherwise each alert is its own notification, keyed by the alert id.

Storm notices (storm guard, ``alerts.storms``): a pending ``storm_outbox`` row whose storm
has had no new record for ``STORM_SETTLE`` seconds becomes one notification of kind
``storm`` (reason ``storm_guard``, key ``storm_`` + a hash of the subscription, the storm
and its alert count) saying "storm on rule X in LS Y: N alerts, M kept" with the exact
counts at that moment (``AlertStore.storms``); a storm that grows afterwards gives another
notice with the new counts. Storm notices are not held back by the rate limit.

A grouped notification's key is ``grp_`` + a hash of the subscription and its
alert ids; it is written to the database before the first attempt, so re-sends
after a crash carry the same key.

Retries: failed attempts are retried after ``min(backoff_max, backoff_base *
2**(attempts-1))`` seconds times a random factor in [0.5, 1) (jitter; a numeric
``Retry-After`` is honoured), until ``give_up_after`` seconds have passed since the
first attempt; then the notification is marked ``failed`` with its last error
(visible in ``hotline subscribe log`` and on the dashboard; ``hotline subscribe
resume --retry-failed`` queues it again). Non-retryable errors (e.g. HTTP 400) fail
at once.

One worker per alert store forms and sends: the worker holds the store's ``deliver``
lease (``alerts.lease``, renewed every ``lease_seconds / 3``); a second worker on the
same store waits as a hot standby (it only records results of its own in-flight
sends) and takes over when the holder stops renewing -- at most ``lease_seconds``
after a kill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hotline.alerts.channels import get_channel
from hotline.alerts.channels.base import Channel, DeliveryError, Notification
from hotline.alerts.lease import Lease
from hotline.alerts.outbox import DELIVERY_COLUMNS, Delivery, install_outbox
from hotline.alerts.records import AlertRecord
from hotline.alerts.store import ALERT_COLUMNS, _row_alert
from hotline.alerts.subscription_store import list_subscriptions
from hotline.alerts.subscriptions import Subscription
from hotline.backoff import Backoff

log = logging.getLogger(__name__)

#: seconds a storm must go without a new storm record before its notice is formed
STORM_SETTLE = 2.0


def group_id(sub_id: str, alert_ids: list[str]) -> str:
    """Stable key of a grouped notification."""
    h = hashlib.sha256((sub_id + "\x1f" + "\x1f".join(alert_ids)).encode()).hexdigest()
    return "grp_" + h[:24]


def plan_notifications(sub: Subscription, alert_ids: list[str], recent_messages: int,
                       last_storm: float | None = None, now: float = 0.0,
                       ) -> list[tuple[str, str, str, list[str]]]:
    """Apply the grouping rule: [(message_id, kind, reason, alert_ids)] to create now.

    ``recent_messages``: notifications created in the rate-limit window; ``last_storm``:
    creation time of the subscription's last storm notification (None if none).
    """
    d = sub.delivery
    n = len(alert_ids)
    if n == 0:
        return []
    if last_storm is not None and now - last_storm < d.storm_window:
        return []  # storm in progress: hold and group
    budget = (d.max_messages - recent_messages) if d.max_messages > 0 else n
    if budget <= 0:
        return []
    storm_on = last_storm is not None and now - last_storm < 2 * d.storm_window and n >= 2
    if n >= d.storm_threshold or storm_on or n > budget:
        reason = "storm" if (n >= d.storm_threshold or storm_on) else "digest"
        chunks = [alert_ids[i: i + d.max_group] for i in range(0, n, d.max_group)][:budget]
        return [(group_id(sub.id, c), "group", reason, c) for c in chunks]
    return [(a, "alert", "single", [a]) for a in alert_ids]


@dataclass
class WorkerStats:
    """Counters of one worker run (what ``hotline deliver`` prints)."""

    formed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    alerts_sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class DeliveryWorker:
    """Forms notifications from the outbox and sends them with a pool of threads."""

    def __init__(
        self,
        store: Any,
        *,
        threads: int = 16,
        poll: float = 0.5,
        max_inflight: int | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lease_seconds: float = 15.0,
        holder: str | None = None,
    ) -> None:
        install_outbox(store)
        #: the store's delivery lease (None: no lease -- tests of the grouping logic only)
        self.lease = (Lease(store, "deliver", holder, lease_seconds, clock)
                      if lease_seconds > 0 else None)
        self._renew_at = 0.0
        self.store = store
        self.threads = threads
        self.poll = poll
        self.max_inflight = max_inflight or threads * 64
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = WorkerStats()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="deliver")
        #: finished attempts: (delivery, attempt start, error or None when sent)
        self._results: queue.Queue[tuple[Delivery, float, DeliveryError | None]] = queue.Queue()
        self._inflight: set[tuple[str, str]] = set()
        self._channels: dict[str, tuple[tuple[float, Any], Channel]] = {}
        self._subs: dict[str, Subscription] = {}
        self._policy: Any = None
        self._next_collect = 0.0

    # ------------------------------------------------------------------ forming
    def _load_subs(self) -> None:
        from hotline.alerts.outbound import load_policy

        self._subs = {s.id: s for s in list_subscriptions(self.store)}
        self._policy = load_policy(self.store)  # the admin's allow-list, re-read each pass

    def collect_storms(self, now: float) -> int:
        """Storm notices of the storms that have settled (module docstring); how many."""
        ph = self.store.ph
        with self.store.transaction() as cur:
            cur.execute("SELECT sub_id, source, run, lumi, rule FROM storm_outbox WHERE "
                        f"message_id IS NULL AND created <= {ph} AND sub_id NOT IN (SELECT id "
                        "FROM subscriptions WHERE paused = 1) ORDER BY created LIMIT 1000",
                        [now - STORM_SETTLE])
            rows = cur.fetchall()
        if not rows:
            return 0
        storms = {}
        for _, source, run, lumi, rule in rows:
            key = (source, int(run), int(lumi), rule)
            if key not in storms:
                found = self.store.storms(source=source, run=int(run), lumi=int(lumi),
                                          rule=rule)
                storms[key] = found[0] if found else None
        deliveries, done = [], []
        for sub_id, source, run, lumi, rule in rows:
            key = (source, int(run), int(lumi), rule)
            st = storms[key]
            if st is None or sub_id not in self._subs:  # storm or subscription gone
                done.append(("-", sub_id, source, run, lumi, rule))
                continue
            mid = "storm_" + hashlib.sha256(
                f"{sub_id}\x1f{source}\x1f{run}\x1f{lumi}\x1f{rule}\x1f{st.n_alerts}".encode()
            ).hexdigest()[:24]
            deliveries.append((sub_id, mid, "storm", "storm_guard", st.n_alerts,
                               json.dumps(list(key)), "pending", 0, now, None, None, now,
                               None, None))
            done.append((mid, sub_id, source, run, lumi, rule))
        with self.store.transaction() as cur:
            if deliveries:
                cur.executemany(
                    f"INSERT INTO deliveries ({','.join(DELIVERY_COLUMNS)}) VALUES "
                    f"({','.join([ph] * len(DELIVERY_COLUMNS))}) "
                    "ON CONFLICT (sub_id, message_id) DO NOTHING", deliveries)
            cur.executemany(
                f"UPDATE storm_outbox SET message_id = {ph} WHERE sub_id = {ph} AND "
                f"source = {ph} AND run = {ph} AND lumi = {ph} AND rule = {ph} "
                "AND message_id IS NULL", done)
        if deliveries:
            log.info("formed %d storm notice(s)", len(deliveries))
        self.stats.formed += len(deliveries)
        return len(deliveries)

    def collect(self, limit: int = 100_000) -> int:
        """Turn queued outbox rows into notifications (grouping rule), and settled storms
        into storm notices; return how many."""
        self._load_subs()
        now = self.clock()
        return self._collect_alerts(now, limit) + self.collect_storms(now)

    def _collect_alerts(self, now: float, limit: int) -> int:
        ph = self.store.ph
        with self.store.transaction() as cur:
            cur.execute("SELECT seq, sub_id, alert_id FROM outbox WHERE message_id IS NULL "
                        "AND sub_id NOT IN (SELECT id FROM subscriptions WHERE paused = 1) "
                        f"ORDER BY seq LIMIT {int(limit)}")
            rows = cur.fetchall()
        if not rows:
            return 0
        by_sub: dict[str, list[tuple[int, str]]] = {}
        for seq, sub_id, alert_id in rows:
            by_sub.setdefault(sub_id, []).append((seq, alert_id))
        new_deliveries: list[tuple[Any, ...]] = []
        assign: list[tuple[str, int]] = []
        with self.store.transaction() as cur:
            for sub_id, items in by_sub.items():
                sub = self._subs.get(sub_id)
                if sub is None or sub.paused:
                    continue
                recent = 0
                if sub.delivery.max_messages > 0:
                    cur.execute(f"SELECT COUNT(*) FROM deliveries WHERE sub_id = {ph} "
                                f"AND created > {ph}", [sub_id, now - sub.delivery.per_seconds])
                    recent = int(cur.fetchone()[0])
                cur.execute(f"SELECT MAX(created) FROM deliveries WHERE sub_id = {ph} AND "
                            "reason = 'storm'", [sub_id])
                last_storm = cur.fetchone()[0]
                seq_of = {a: s for s, a in items}
                for mid, kind, reason, ids in plan_notifications(
                        sub, [a for _, a in items], recent, last_storm, now):
                    new_deliveries.append((sub_id, mid, kind, reason, len(ids), json.dumps(ids),
                                           "pending", 0, now, None, None, now, None, None))
                    assign.extend((mid, seq_of[a]) for a in ids)
            if new_deliveries:
                cur.executemany(
                    f"INSERT INTO deliveries ({','.join(DELIVERY_COLUMNS)}) VALUES "
                    f"({','.join([ph] * len(DELIVERY_COLUMNS))}) "
                    "ON CONFLICT (sub_id, message_id) DO NOTHING", new_deliveries)
                cur.executemany(f"UPDATE outbox SET message_id = {ph} WHERE seq = {ph}", assign)
        if new_deliveries:
            groups = sum(1 for d in new_deliveries if d[2] == "group")
            log.info("formed %d notification(s) (%d grouped) from %d queued alert(s)",
                     len(new_deliveries), groups, len(assign))
        self.stats.formed += len(new_deliveries)
        return len(new_deliveries)

    # ------------------------------------------------------------------ sending
    def _channel(self, sub: Subscription) -> Channel:
        if self._policy is None:
            from hotline.alerts.outbound import load_policy

            self._policy = load_policy(self.store)
        cached = self._channels.get(sub.id)
        if cached is not None and cached[0] == (sub.updated, self._policy):
            return cached[1]
        if cached is not None:
            cached[1].close()
        ch = get_channel(sub.channel)(sub)
        if hasattr(ch, "policy"):
            ch.policy = self._policy  # outbound safety (alerts.outbound)
        self._channels[sub.id] = ((sub.updated, self._policy), ch)
        return ch

    def _fetch_alerts(self, ids: set[str]) -> dict[str, AlertRecord]:
        out: dict[str, AlertRecord] = {}
        idl = list(ids)
        ph = self.store.ph
        with self.store.transaction() as cur:
            for i in range(0, len(idl), 500):
                chunk = idl[i: i + 500]
                cur.execute(f"SELECT {','.join(ALERT_COLUMNS)} FROM alerts WHERE id IN "
                            f"({','.join([ph] * len(chunk))})", chunk)
                for row in cur.fetchall():
                    r = _row_alert(row)
                    out[r.id] = r
        return out

    def submit_due(self, limit: int | None = None) -> int:
        """Start sending due notifications (not already in flight); return how many."""
        room = self.max_inflight - len(self._inflight)
        if limit is not None:
            room = min(room, limit)
        if room <= 0:
            return 0
        now = self.clock()
        ph = self.store.ph
        with self.store.transaction() as cur:
            cur.execute(
                f"SELECT {','.join(DELIVERY_COLUMNS)} FROM deliveries WHERE status = 'pending' "
                f"AND next_at <= {ph} AND sub_id NOT IN (SELECT id FROM subscriptions WHERE "
                f"paused = 1) ORDER BY next_at LIMIT {int(room + len(self._inflight))}", [now])
            due = [Delivery.from_row(r) for r in cur.fetchall()]
        due = [d for d in due if (d.sub_id, d.message_id) not in self._inflight][:room]
        if not due:
            return 0
        if any(d.sub_id not in self._subs for d in due):
            self._load_subs()
        alerts = self._fetch_alerts({a for d in due if d.kind != "storm" for a in d.alert_ids})
        for d in due:
            key = (d.sub_id, d.message_id)
            sub = self._subs.get(d.sub_id)
            if sub is None:
                continue
            if d.kind == "storm":
                found = self.store.storms(source=d.alert_ids[0], run=d.alert_ids[1],
                                          lumi=d.alert_ids[2], rule=d.alert_ids[3])
                storm = found[0].to_dict() if found else {
                    "source": d.alert_ids[0], "run": d.alert_ids[1], "lumi": d.alert_ids[2],
                    "rule": d.alert_ids[3], "n_alerts": d.n_alerts, "n_kept": None}
                storm["n_alerts"] = d.n_alerts  # the count the notice was formed with
                note = Notification(d.message_id, d.sub_id, [], d.kind, d.reason, storm=storm)
                self._inflight.add(key)
                self._pool.submit(self._send_one, self._channel(sub), note, d,
                                  sub.delivery.timeout)
                continue
            recs = [alerts[a] for a in d.alert_ids if a in alerts]
            if len(recs) < len(d.alert_ids):
                self._results.put((d, self.clock(), DeliveryError(
                    f"{len(d.alert_ids) - len(recs)} alert(s) of this notification are no "
                    "longer in the alert store", retryable=False)))
                self._inflight.add(key)
                continue
            note = Notification(d.message_id, d.sub_id, recs, d.kind, d.reason)
            self._inflight.add(key)
            self._pool.submit(self._send_one, self._channel(sub), note, d, sub.delivery.timeout)
        return len(due)

    def _send_one(self, channel: Channel, note: Notification, d: Delivery,
                  timeout: float) -> None:
        t0 = self.clock()
        try:
            channel.send(note, timeout)
            err = None
        except DeliveryError as exc:
            err = exc
        except Exception as exc:  # noqa: BLE001 - a channel bug must not kill the worker
            log.exception("channel %s crashed on %s", channel.name, note.message_id)
            err = DeliveryError(f"{type(exc).__name__}: {exc}")
        self._results.put((d, t0, err))

    def _backoff(self, attempts: int, base: float, cap: float) -> float:
        return Backoff(base, cap, jitter=True, rng=self.rng).delay(attempts)

    def record(self, wait: float = 0.0) -> int:
        """Write finished attempts to the delivery log (waits up to ``wait`` for the first)."""
        results: list[tuple[Delivery, float, DeliveryError | None]] = []
        try:
            results.append(self._results.get(timeout=wait) if wait > 0
                           else self._results.get_nowait())
        except queue.Empty:
            return 0
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                break
        now = self.clock()
        # (status, attempts, first_attempt, last_attempt, next_at, sent_at, last_error,
        #  sub_id, message_id) per finished attempt
        updates: list[tuple[str, int, float, float, float, float | None, str | None, str, str]] = []
        for d, t0, err in results:
            self._inflight.discard((d.sub_id, d.message_id))
            sub = self._subs.get(d.sub_id)
            attempts = d.attempts + 1
            first = d.first_attempt if d.first_attempt is not None else t0
            if err is None:
                updates.append(("sent", attempts, first, t0, d.next_at, now, d.last_error,
                                d.sub_id, d.message_id))
                self.stats.sent += 1
                self.stats.alerts_sent += d.n_alerts
                continue
            msg = str(err)[:500]
            self.stats.errors[msg[:80]] = self.stats.errors.get(msg[:80], 0) + 1
            dl = sub.delivery if sub is not None else None
            if not err.retryable or dl is None or now - first + 1e-9 >= dl.give_up_after:
                updates.append(("failed", attempts, first, t0, d.next_at, None, msg,
                                d.sub_id, d.message_id))
                self.stats.failed += 1
                log.warning("subscription %s: giving up on notification %s after %d attempt(s): "
                            "%s", d.sub_id, d.message_id, attempts, msg)
            else:
                delay = self._backoff(attempts, dl.backoff_base, dl.backoff_max)
                if err.retry_after:
                    delay = max(delay, min(err.retry_after, dl.backoff_max))
                delay = min(delay, max(dl.give_up_after - (now - first), 0.0))
                updates.append(("pending", attempts, first, t0, now + delay, None, msg,
                                d.sub_id, d.message_id))
                self.stats.retried += 1
                log.info("subscription %s: attempt %d of %s failed (%s); retry in %.1f s",
                         d.sub_id, attempts, d.message_id, msg, delay)
        ph = self.store.ph
        with self.store.transaction() as cur:
            cur.executemany(
                f"UPDATE deliveries SET status = {ph}, attempts = {ph}, first_attempt = {ph}, "
                f"last_attempt = {ph}, next_at = {ph}, sent_at = {ph}, last_error = {ph} "
                f"WHERE sub_id = {ph} AND message_id = {ph}", updates)
        return len(results)

    # ------------------------------------------------------------------ loop
    def idle(self) -> bool:
        """Nothing in flight, nothing queued or pending for an active subscription."""
        if self._inflight or not self._results.empty():
            return False
        with self.store.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox WHERE message_id IS NULL AND sub_id NOT IN "
                        "(SELECT id FROM subscriptions WHERE paused = 1)")
            queued = int(cur.fetchone()[0])
            cur.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND sub_id "
                        "NOT IN (SELECT id FROM subscriptions WHERE paused = 1)")
            pending = int(cur.fetchone()[0])
            cur.execute("SELECT COUNT(*) FROM storm_outbox WHERE message_id IS NULL AND sub_id "
                        "NOT IN (SELECT id FROM subscriptions WHERE paused = 1)")
            storms = int(cur.fetchone()[0])
        return queued == 0 and pending == 0 and storms == 0

    def holds_lease(self) -> bool:
        """Acquire or renew the delivery lease when due; True if this worker may deliver."""
        if self.lease is None:
            return True
        now = self.clock()
        if now >= self._renew_at:
            was = self.lease.held
            held = self.lease.acquire()
            self._renew_at = now + (self.lease.seconds / 3 if held else min(self.poll, 1.0))
            if held != was:
                log.warning("delivery: %s", self.lease.describe())
        return self.lease.held

    def step(self) -> None:
        """One turn of the loop: collect (every ``poll`` s), submit due work, record results.

        Without the lease (another worker delivers) only results of sends already in
        flight are recorded; nothing new is formed or sent.
        """
        if not self.holds_lease():
            self.record(wait=0.05 if self._inflight else self.poll)
            return
        now = self.clock()
        if now >= self._next_collect:
            self.collect()
            self._next_collect = now + self.poll
        if len(self._inflight) <= self.max_inflight // 2:
            self.submit_due()
        self.record(wait=0.05 if self._inflight else self.poll)

    def run(self, stop: threading.Event | None = None, until_idle: bool = False,
            timeout: float | None = None) -> WorkerStats:
        """Deliver until ``stop`` is set (or, with ``until_idle``, nothing is left to do)."""
        t_end = None if timeout is None else time.monotonic() + timeout
        idle_check = 0.0
        while not (stop is not None and stop.is_set()):
            self.step()
            if until_idle and time.monotonic() >= idle_check:
                idle_check = time.monotonic() + 0.1
                if not self._inflight and self.idle():
                    break
            if t_end is not None and time.monotonic() > t_end:
                break
        return self.stats

    def close(self, wait: bool = True) -> None:
        """Stop the threads; results of finished attempts are written before returning."""
        self._pool.shutdown(wait=wait)
        if wait:
            while self.record():
                pass
        for _, ch in self._channels.values():
            ch.close()
        self._channels.clear()
        if self.lease is not None and self.lease.held:
            try:
                self.lease.release()  # a standby takes over at once, not after expiry
            except Exception as exc:  # noqa: BLE001 - the lease then simply expires
                log.warning("delivery: could not release the lease: %s", exc)

    def __enter__(self) -> DeliveryWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_test(store: Any, sub: Subscription, timeout: float | None = None) -> tuple[bool, str]:
    """Send one synthetic alert straight through the subscription's channel (no outbox)."""
    import uuid

    rec = AlertRecord.make(
        kind=(sub.filter.kinds or ("classic",))[0], rule="hotline-test", source="hotline-test",
        run=0, lumi=0, event=int(time.time()), payload={"test": True},
    )
    from hotline.alerts.outbound import load_policy

    note = Notification("test_" + uuid.uuid4().hex[:20], sub.id, [rec])
    ch = get_channel(sub.channel)(sub)
    if hasattr(ch, "policy"):
        ch.policy = load_policy(store)
    try:
        ch.send(note, timeout or sub.delivery.timeout)
        return True, f"delivered test notification {note.message_id} to {sub.target()}"
    except DeliveryError as exc:
        return False, f"test notification to {sub.target()} failed: {exc}"
    finally:
        ch.close()


__all__ = ["DeliveryWorker", "WorkerStats", "group_id", "plan_notifications", "send_test"]
