"""The live feed shared by all sessions of one server: alert-store polling plus the replay overlay.

Owns ``LiveFeed`` and the ``FeedSnapshot`` it publishes. The feed reads the alert store
(lumisection summaries, the newest alerts, the alert count) at most once per
``min_interval`` seconds, whoever asks, so N browsers cost one store query per interval,
not N; and it overlays the still-open lumisections a running embedded replay hands over
through ``on_result(batch, result)`` (the ``run_embedded`` hook). The overlay's summaries
unite their event tallies, so an event seen twice is shown once, and a lumisection is
dropped from the overlay once the store holds at least as many of its events (the store
is the exact count; the overlay only fills the gap until a lumisection is flushed), so
the overlay's memory stays that of the open lumisections. The snapshot also lists the
storm guard's storms (``AlertStore.storms``: "storm on rule X in LS Y: N alerts, M kept",
exact counts), read on the same schedule. Snapshots are immutable
once published; each session turns them into what it draws (``state.DashboardState``).
What every session would compute alike from a snapshot (the run status, the alert map) is
computed once and shared through ``memo(key, fn)``, kept until the next snapshot.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.alerts.store import AlertStore
from hotline.alerts.storms import Storm
from hotline.dashboard.alert_table import TABLE_ROWS

__all__ = ["MEMO_KEYS", "FeedSnapshot", "LiveFeed"]

log = logging.getLogger(__name__)

#: shared results kept by ``LiveFeed.memo`` (the oldest key goes first)
MEMO_KEYS = 64


@dataclass
class FeedSnapshot:
    """What the feed knew at one moment (immutable once published)."""

    version: int
    summaries: dict[tuple[str, int, int], LumiSummary]
    alerts: list[AlertRecord]  #: newest first, at most ``max_alerts``
    alert_total: int
    time: float
    storms: tuple[Storm, ...] = ()  #: the storm guard's storms in the store (alerts.storms)


class LiveFeed:
    """Store + live-replay view shared by all sessions; see the module docstring."""

    def __init__(self, store: AlertStore, source: str | None = None,
                 min_interval: float = 0.5, max_alerts: int = TABLE_ROWS) -> None:
        self.store = store
        self.source = source
        self.min_interval = min_interval
        self.max_alerts = max_alerts
        self._lock = threading.RLock()
        self._live: dict[tuple[str, int, int], LumiSummary] = {}
        self._alerts: list[AlertRecord] = []
        self._ids: set[str] = set()
        self._since: float | None = None
        self._snap = FeedSnapshot(0, {}, [], 0, 0.0)
        self._last_poll = -math.inf
        self._memo: dict[Any, tuple[Any, Any, float]] = {}
        self._computing: dict[Any, threading.Event] = {}
        self._memo_lock = threading.Lock()

    def memo(self, key: Any, fn: Callable[[], Any], version: Any = None,
             min_interval: float = 0.0, stale_ok: bool = False) -> Any:
        """``fn()`` computed once per ``key`` and ``version`` (default: the current snapshot
        version), shared by every session of the server: a session asking while another
        computes it waits for that result instead of computing it again. A result younger
        than ``min_interval`` seconds is kept even if the version moved on; with
        ``stale_ok`` an older one is returned at once while a background thread computes
        the new one (the server's event loop never waits for a recomputation, only for a
        key's first result). At most ``MEMO_KEYS`` keys are kept."""
        v = self._snap.version if version is None else version
        while True:
            with self._memo_lock:
                hit = self._memo.get(key)
                if hit is not None and (hit[0] == v
                                        or time.monotonic() - hit[2] < min_interval):
                    return hit[1]
                busy = self._computing.get((key, v))
                if hit is not None and stale_ok:
                    if busy is None:
                        self._computing[(key, v)] = threading.Event()
                        threading.Thread(target=self._compute, args=(key, v, fn),
                                         name="hotline-dashboard-memo", daemon=True).start()
                    return hit[1]
                if busy is None:
                    self._computing[(key, v)] = threading.Event()
                    break
            busy.wait(60)  # another session computes it; then read its result
        return self._compute(key, v, fn)

    def _compute(self, key: Any, v: Any, fn: Callable[[], Any]) -> Any:
        """Compute ``fn()`` for ``memo`` (whose caller registered ``(key, v)`` as busy)."""
        try:
            value = fn()  # outside the lock: sessions asking for other keys go on
            with self._memo_lock:
                self._memo.pop(key, None)
                self._memo[key] = (v, value, time.monotonic())
                while len(self._memo) > MEMO_KEYS:
                    self._memo.pop(next(iter(self._memo)))
        except Exception:
            log.exception("dashboard: computing %r failed", key)
            raise
        finally:
            with self._memo_lock:
                busy = self._computing.pop((key, v), None)
            if busy is not None:
                busy.set()
        return value

    def on_result(self, batch: Any, result: Any) -> None:
        """Add a replay batch's lumisection summaries to the live overlay (replay thread)."""
        with self._lock:
            for k, s in result.summaries.items():
                self._live[k] = self._live[k] + s if k in self._live else s

    def reset_live(self) -> None:
        """Forget the live overlay (a new replay starts counting from zero)."""
        with self._lock:
            self._live.clear()

    def snapshot(self, force: bool = False) -> FeedSnapshot:
        """The latest snapshot, re-reading the store if it is older than ``min_interval``."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_poll < self.min_interval:
                return self._snap
            self._last_poll = now
            try:
                self._poll()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not kill the page
                log.warning("dashboard feed: cannot read the alert store: %s", exc)
            return self._snap

    def _poll(self) -> None:
        stored = {s.key: s for s in self.store.summaries(source=self.source)}
        for k, s in list(self._live.items()):
            if k not in stored or s.n_events > stored[k].n_events:
                stored[k] = s
            else:  # the store has caught up with this lumisection: it is the exact count
                del self._live[k]
        new = self.store.alerts(limit=self.max_alerts, since=self._since, source=self.source)
        fresh = [a for a in new if a.id not in self._ids]
        storms = tuple(self.store.storms(source=self.source))
        changed = bool(fresh) or storms != self._snap.storms or (
            stored.keys() != self._snap.summaries.keys()) or any(
            stored[k].n_events != self._snap.summaries[k].n_events for k in stored
        )
        if fresh:
            self._alerts = (fresh + self._alerts)[: self.max_alerts]
            self._alerts.sort(key=lambda a: a.created, reverse=True)
            newest = self._alerts[0].created
            # keep the ids at the newest timestamp to de-duplicate the next `since` query
            self._ids = {a.id for a in self._alerts if a.created >= newest}
            self._since = newest
        if changed:
            total = self.store.count_alerts(source=self.source)
            self._snap = FeedSnapshot(self._snap.version + 1, stored, list(self._alerts), total,
                                      time.time(), storms)
