"""PostgreSQL alert store (psycopg 3), for the distributed deployment.

``PostgresAlertStore`` reuses all SQL of ``alerts.store.SQLAlertStore`` (the
same idempotent inserts, filters, summary upserts and dead letters as SQLite)
with ``%s`` placeholders, ``BIGSERIAL`` and ``BYTEA``; ``alerts.backends`` registers it
for ``postgresql://`` and ``postgres://`` URLs (psycopg is imported on connect).
Several processes may share one database: schema creation is serialised with an
advisory lock and alert inserts use
``ON CONFLICT (id) DO NOTHING``, so concurrent sinks never duplicate an alert.
Partial summaries (``add_summary_parts``) claim their part ids and event numbers
with the same ``ON CONFLICT DO NOTHING`` (``RETURNING`` the events that were new)
and add to the lumisection's row read with ``SELECT ... FOR UPDATE`` in the same
transaction, so concurrent sinks count each event once and lose no update.
A summary's histograms (``hists`` column, added to older stores when opened) are
read and written in that same locked read-add-write.
Dead letters are inserted by stable id with ``ON CONFLICT (id)``, so concurrent sinks
and re-replays store each failure once.
A lost connection is re-opened on the next transaction.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from hotline.alerts.audit import append_only_sql
from hotline.alerts.records import AlertRecord
from hotline.alerts.store import ALERT_COLUMNS, SCHEMA_SQL, SQLAlertStore, _alert_row
from hotline.errors import StoreError


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresAlertStore(SQLAlertStore):
    """PostgreSQL backend: one psycopg connection per store object, thread-safe by a lock."""

    ph = "%s"
    autoinc = "BIGSERIAL PRIMARY KEY"
    blob = "BYTEA"
    for_update = " FOR UPDATE"
    without_rowid = ""

    def __init__(self, url: str, connect_timeout: float = 10.0) -> None:
        super().__init__()
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        self.url = url
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._conn: Any = None
        self._connect()
        self._open_tables()

    def _connect(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(self.url, autocommit=False,
                                         connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.Error as exc:
            raise StoreError(f"cannot open alert store {_redact(self.url)}: "
                             f"{str(exc).strip().splitlines()[0]}") from None

    def _create_schema(self) -> None:
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('hotline-alert-store-schema'))")
            for stmt in SCHEMA_SQL:
                cur.execute(stmt.format(autoinc=self.autoinc, blob=self.blob,
                                        without_rowid=self.without_rowid))
            for stmt in append_only_sql(self.ph):
                cur.execute(stmt)
            self._upgrade_deadletters(cur)
            self._upgrade_summaries(cur)

    def add_alerts(self, records: Sequence[AlertRecord]) -> list[AlertRecord]:
        """Insert; return exactly the records this call inserted, even with concurrent writers.

        (``INSERT ... ON CONFLICT DO NOTHING RETURNING id``: a row another transaction
        inserted first is not reported as new here, so hooks never double-count.)
        """
        if not records:
            return []
        uniq = {r.id: r for r in records}
        cols = ",".join(ALERT_COLUMNS)
        sql = (f"INSERT INTO alerts ({cols}) VALUES ({','.join(['%s'] * len(ALERT_COLUMNS))}) "
               "ON CONFLICT (id) DO NOTHING RETURNING id")
        with self.transaction() as cur:
            cur.executemany(sql, [_alert_row(r) for r in uniq.values()], returning=True)
            inserted: set[str] = set()
            while True:
                row = cur.fetchone()
                if row is not None:
                    inserted.add(row[0])
                if not cur.nextset():
                    break
            new = [r for r in uniq.values() if r.id in inserted]
            if new:
                for hook in self.on_new_alerts:
                    hook(cur, new)
        return new

    def _claim_events(self, cur: Any, key: tuple[str, int, int], events: Any) -> Any:
        cur.execute(
            "INSERT INTO lumi_events (source, run, lumi, event) "
            "SELECT %s, %s, %s, unnest(%s::bigint[]) "
            "ON CONFLICT DO NOTHING RETURNING event",
            (*key, np.asarray(events).tolist()),
        )
        return np.fromiter((r[0] for r in cur.fetchall()), dtype=np.int64)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._connect()
            conn = self._conn
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StoreError(f"alert store {_redact(self.url)}: {msg}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
