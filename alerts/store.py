"""The durable alert store: alerts, per-lumisection summaries, dead letters.

``AlertStore`` is the small interface every backend fills; ``SQLAlertStore``
holds the SQL shared by SQLite (default: a real file in WAL mode) and
PostgreSQL (``alerts.store_postgres``); ``alerts.backends.open_store(url)`` picks the
backend from ``sqlite:///path`` or ``postgresql://...``. Every SQL store, however it
is built, has its subscription and outbox tables and the outbox hook
(``alerts.outbox.install_outbox``) from the moment it is opened.

Inserting is idempotent: alerts are keyed by their stable id and
``add_alerts`` returns only the records that were new, inside the same
transaction (so an outbox written there never double-counts). Partial
summaries are exact too: ``add_summary_parts`` records each part id in
``lumi_summary_parts`` (a part seen before is skipped at once) and each event
number of a part's ``EventTally`` in ``lumi_events``, and in the same transaction
adds only the events that were new to the row of their (source, run,
lumisection) in ``lumi_summaries`` (read under a row lock, add, write). So
re-reads, re-processed batches, concurrent sinks, files given twice and
overlapping replays count every (source, run, lumisection, event) exactly once.
Parts of older writers without a tally are added once per part id.
``upsert_summaries`` replaces whole summaries.

Dead letters are keyed by their stable id (``DeadLetter.id``): the same failure written
again (a re-replay, a re-read record) is stored once; one that happens again after it
was marked resolved (``resolve_deadletters``, used by ``hotline deadletters --redrive``)
is open again. ``iter_alerts`` / ``iter_deadletters`` page through every matching row
(keyset paging, short transactions), so exports never load a whole store into memory.
Stores written before dead letters had ids are upgraded when opened. Each lumisection's
histograms (``LumiSummary.hists``, compact wire form) live in the ``hists`` column of
``lumi_summaries``, outside ``data``, so the usual summary reads do not parse them
(``summaries(..., hists=True)`` reads them); stores written before it get the column
when opened. Storm records of the
storm guard (``alerts.storms``) are kept per part in ``storm_parts`` (``add_storms``, each
part once); ``storms`` gives one ``Storm`` per (source, run, lumisection, rule) with the
exact counts (alerts from the summary, kept from the alerts table). The run status keeps
its reference runs (``status_references``, ``alerts.reference``) and lumisection flags
(``lumi_flags``, ``alerts.certification``) in the same store, the crew's acknowledgements
(``acknowledgements``, ``alerts.acknowledgements``), and access control (the role mapping
``access_roles``, ``alerts.access``; the append-only ``audit_log``, ``alerts.audit``); older
stores get those tables when opened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hotline.alerts.access import ACCESS_SCHEMA_SQL
from hotline.alerts.audit import AUDIT_SCHEMA_SQL, append_only_sql
from hotline.alerts.outbox import install_outbox
from hotline.alerts.records import (
    AlertRecord,
    DeadLetter,
    LumiSummary,
    deadletter_id,
    payload_json,
)
from hotline.alerts.storms import Storm, StormRecord
from hotline.errors import StoreError

ALERT_COLUMNS = (
    "id", "kind", "rule", "source", "run", "lumi", "event", "score", "p_value",
    "significance", "created", "payload", "schema",
)

#: the columns ``SQLAlertStore.alerts`` can order by (a table's sortable columns)
SORTABLE_ALERT_COLUMNS = frozenset({"created", "run", "lumi", "event", "rule", "kind", "score",
                                    "p_value", "significance"})

SCHEMA_SQL = [
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, rule TEXT NOT NULL, source TEXT NOT NULL,
        run BIGINT NOT NULL, lumi BIGINT NOT NULL, event BIGINT NOT NULL,
        score DOUBLE PRECISION, p_value DOUBLE PRECISION, significance DOUBLE PRECISION,
        created DOUBLE PRECISION NOT NULL, payload TEXT NOT NULL, schema INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS alerts_run_lumi ON alerts (run, lumi)",
    "CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule)",
    "CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created)",
    """CREATE TABLE IF NOT EXISTS lumi_summaries (
        source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL,
        n_events BIGINT NOT NULL, n_bad BIGINT NOT NULL, data TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL, hists TEXT, PRIMARY KEY (source, run, lumi))""",
    """CREATE TABLE IF NOT EXISTS lumi_summary_parts (
        source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL, part TEXT NOT NULL,
        added DOUBLE PRECISION NOT NULL, PRIMARY KEY (source, run, lumi, part))""",
    """CREATE TABLE IF NOT EXISTS lumi_events (
        source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL, event BIGINT NOT NULL,
        PRIMARY KEY (source, run, lumi, event)){without_rowid}""",
    """CREATE TABLE IF NOT EXISTS deadletters (
        seq {autoinc}, source TEXT NOT NULL, origin TEXT NOT NULL, reason TEXT NOT NULL,
        run BIGINT, lumi BIGINT, events TEXT NOT NULL, payload {blob},
        created DOUBLE PRECISION NOT NULL, id TEXT, resolved DOUBLE PRECISION,
        resolution TEXT)""",
    # run status: the expert's reference runs (alerts.reference) and the lumisection
    # certification flags with their history (alerts.certification); a store written
    # before they existed gets them when opened
    """CREATE TABLE IF NOT EXISTS status_references (
        seq {autoinc}, source TEXT NOT NULL, run BIGINT NOT NULL, data TEXT NOT NULL,
        set_by TEXT NOT NULL, set_at DOUBLE PRECISION NOT NULL, comment TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS lumi_flags (
        seq {autoinc}, source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL,
        good INTEGER NOT NULL, level TEXT NOT NULL, reason TEXT NOT NULL,
        decided_by TEXT NOT NULL, comment TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS lumi_flags_run ON lumi_flags (source, run, lumi)",
    # crew acknowledgements of alerts and lumisection flags (alerts.acknowledgements)
    """CREATE TABLE IF NOT EXISTS acknowledgements (
        seq {autoinc}, source TEXT NOT NULL, run BIGINT NOT NULL, first_lumi BIGINT NOT NULL,
        last_lumi BIGINT NOT NULL, alert_id TEXT NOT NULL, what TEXT NOT NULL,
        acked_by TEXT NOT NULL, comment TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS acknowledgements_run ON acknowledgements (source, run)",
    "CREATE INDEX IF NOT EXISTS acknowledgements_alert ON acknowledgements (alert_id)",
    # access control: the role mapping (alerts.access) and the append-only audit log of
    # every write (alerts.audit)
    *ACCESS_SCHEMA_SQL,
    *AUDIT_SCHEMA_SQL,
    # storm guard (alerts.storms): one row per storm record part (listed alerts in data)
    """CREATE TABLE IF NOT EXISTS storm_parts (
        source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL, rule TEXT NOT NULL,
        part TEXT NOT NULL, kind TEXT NOT NULL, threshold BIGINT NOT NULL,
        sample_every BIGINT NOT NULL, seen BIGINT NOT NULL, kept BIGINT NOT NULL,
        listed BIGINT NOT NULL, data TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (source, run, lumi, rule, part))""",
]

#: dead-letter columns added after the first release (added to older stores when opened),
#: and the indexes that need them
DEADLETTER_UPGRADE_COLUMNS = (("id", "TEXT"), ("resolved", "DOUBLE PRECISION"),
                              ("resolution", "TEXT"))
DEADLETTER_INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS deadletters_id ON deadletters (id)",
    "CREATE INDEX IF NOT EXISTS deadletters_run_lumi ON deadletters (run, lumi)",
]
#: lumi_summaries columns added after the first release (added to older stores when opened)
SUMMARY_UPGRADE_COLUMNS = (("hists", "TEXT"),)
DEADLETTER_COLUMNS = ("seq", "source", "origin", "reason", "run", "lumi", "events", "payload",
                      "created", "resolved", "resolution")


class AlertStore(ABC):
    """What the pipeline, sink, dashboard and CLI need from an alert store."""

    url: str

    @abstractmethod
    def add_alerts(self, records: Sequence[AlertRecord]) -> list[AlertRecord]:
        """Insert; return the records that were not already stored."""

    @abstractmethod
    def upsert_summaries(self, summaries: Iterable[LumiSummary]) -> None:
        """Write whole summaries, replacing what is stored for their lumisections."""

    @abstractmethod
    def add_summary_parts(self, parts: Iterable[LumiSummary]) -> int:
        """Add partial summaries, each part id once per lumisection; returns parts applied.

        A part without an id (``part`` None, older writers) is always added.
        """

    @abstractmethod
    def add_deadletters(self, items: Iterable[DeadLetter]) -> int:
        """Insert by stable id; returns how many were new (or open again after resolution)."""

    @abstractmethod
    def alerts(self, **filters: Any) -> list[AlertRecord]: ...

    @abstractmethod
    def count_alerts(self, **filters: Any) -> int: ...

    @abstractmethod
    def get_alert(self, alert_id: str) -> AlertRecord | None: ...

    @abstractmethod
    def summaries(self, source: str | None = None, run: int | None = None,
                  hists: bool = False) -> list[LumiSummary]:
        """Summaries in (run, lumi) order; their histograms only when ``hists``."""

    @abstractmethod
    def deadletters(self, limit: int | None = 100, **filters: Any) -> list[DeadLetter]:
        """Newest first; filters: run, lumi, source, origin, resolved (bool), id."""

    def add_storms(self, records: Iterable[StormRecord]) -> list[StormRecord]:
        """Store storm records, each part once; returns the new ones."""
        raise StoreError(f"{type(self).__name__} does not keep storm records")

    def storms(self, **filters: Any) -> list[Storm]:
        """Storms (one per source, run, lumisection, rule); filters: source, run, lumi, rule."""
        return []

    def iter_alerts(self, page_size: int = 1000, **filters: Any) -> Iterator[AlertRecord]:
        """Every matching alert, newest first, read ``page_size`` at a time."""
        offset = 0
        while True:
            page = self.alerts(limit=page_size, offset=offset, **filters)
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def iter_deadletters(self, page_size: int = 1000, **filters: Any) -> Iterator[DeadLetter]:
        """Every matching dead letter, newest first (backends page through the store)."""
        yield from self.deadletters(limit=None, **filters)

    def count_deadletters(self, **filters: Any) -> int:
        return sum(1 for _ in self.iter_deadletters(**filters))

    def resolve_deadletters(self, ids: Iterable[str], resolution: str) -> int:
        """Mark open dead letters resolved (re-driven successfully); returns how many."""
        raise StoreError(f"{type(self).__name__} cannot mark dead letters resolved")

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _match(column: str, value: Any, ph: str, clauses: list[str], args: list[Any]) -> None:
    """Add ``column = value`` (or ``IN (...)`` for a collection; an empty one matches
    nothing) to a WHERE clause being built."""
    if isinstance(value, (list, tuple, set, frozenset)):
        if not value:
            clauses.append("1 = 0")
            return
        clauses.append(f"{column} IN ({','.join([ph] * len(value))})")
        args.extend(value)
    else:
        clauses.append(f"{column} = {ph}")
        args.append(value)


def _alert_row(r: AlertRecord) -> tuple:
    return (
        r.id, r.kind, r.rule, r.source, r.run, r.lumi, r.event, r.score, r.p_value,
        r.significance, r.created, r.payload_json, r.schema,
    )


def _summary_columns(s: LumiSummary) -> tuple[str, str | None]:
    """(data JSON without the histograms, histograms JSON or None) of a whole summary."""
    d = s.to_dict()
    hists = d.pop("hists", None)
    return json.dumps(d), None if hists is None else json.dumps(hists)


def _row_summary(data: str, hists: str | None) -> LumiSummary:
    d = json.loads(data)
    if hists:
        d["hists"] = json.loads(hists)
    return LumiSummary.from_dict(d)


def _row_alert(row: Sequence[Any]) -> AlertRecord:
    d = dict(zip(ALERT_COLUMNS, row))
    d["payload"] = json.loads(d["payload"])
    return AlertRecord(**d)


class SQLAlertStore(AlertStore):
    """SQL shared by the SQLite and PostgreSQL backends (``ph`` = placeholder)."""

    ph = "?"
    autoinc = "INTEGER PRIMARY KEY AUTOINCREMENT"
    blob = "BLOB"
    without_rowid = " WITHOUT ROWID"
    #: row lock on a SELECT inside a write transaction ("" where the transaction locks the db)
    for_update = ""

    #: called inside the insert transaction with (cursor, new records); subscriptions hook here
    on_new_alerts: list[Callable[[Any, list[AlertRecord]], None]]
    #: called inside the storm-insert transaction with (cursor, new storm records)
    on_new_storms: list[Callable[[Any, list[StormRecord]], None]]

    def __init__(self) -> None:
        self.on_new_alerts = []
        self.on_new_storms = []

    def _open_tables(self) -> None:
        """Create the store's tables and hook the subscription outbox in (backends call this
        once connected), so a store opened directly behaves as one from ``open_store``."""
        self._create_schema()
        install_outbox(self)

    @contextmanager
    @abstractmethod
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction (commit on success, rollback on error)."""

    def _create_schema(self) -> None:
        with self.transaction() as cur:
            for stmt in SCHEMA_SQL:
                cur.execute(stmt.format(autoinc=self.autoinc, blob=self.blob,
                                        without_rowid=self.without_rowid))
            for stmt in append_only_sql(self.ph):
                cur.execute(stmt)
            self._upgrade_deadletters(cur)
            self._upgrade_summaries(cur)

    def _upgrade_summaries(self, cur: Any) -> None:
        """Give the summaries of older stores their later columns (inside the schema
        transaction); their rows keep NULL there (no histograms)."""
        have = self._table_columns(cur, "lumi_summaries")
        for name, sql_type in SUMMARY_UPGRADE_COLUMNS:
            if name not in have:
                cur.execute(f"ALTER TABLE lumi_summaries ADD COLUMN {name} {sql_type}")

    def _table_columns(self, cur: Any, table: str) -> set[str]:
        cur.execute("SELECT column_name FROM information_schema.columns "
                    f"WHERE table_schema = current_schema() AND table_name = {self.ph}", (table,))
        return {r[0] for r in cur.fetchall()}

    def _upgrade_deadletters(self, cur: Any) -> None:
        """Give dead letters of older stores their columns and ids (duplicates: the first
        kept), then the unique id index; inside the schema transaction."""
        have = self._table_columns(cur, "deadletters")
        for name, sql_type in DEADLETTER_UPGRADE_COLUMNS:
            if name not in have:
                cur.execute(f"ALTER TABLE deadletters ADD COLUMN {name} {sql_type}")
        cur.execute("SELECT seq, source, origin, reason, run, lumi, events FROM deadletters "
                    "WHERE id IS NULL ORDER BY seq")
        rows = cur.fetchall()
        if rows:
            cur.execute("SELECT id FROM deadletters WHERE id IS NOT NULL")
            seen = {r[0] for r in cur.fetchall()}
            updates, duplicates = [], []
            for seq, source, origin, reason, run, lumi, events in rows:
                did = deadletter_id(source, origin, reason, run, lumi,
                                    tuple(json.loads(events)))
                if did in seen:
                    duplicates.append((seq,))
                else:
                    seen.add(did)
                    updates.append((did, seq))
            ph = self.ph
            if updates:
                cur.executemany(f"UPDATE deadletters SET id = {ph} WHERE seq = {ph}", updates)
            if duplicates:
                cur.executemany(f"DELETE FROM deadletters WHERE seq = {ph}", duplicates)
        for stmt in DEADLETTER_INDEXES:
            cur.execute(stmt)

    def add_alerts(self, records: Sequence[AlertRecord]) -> list[AlertRecord]:
        if not records:
            return []
        uniq = list({r.id: r for r in records}.values())
        ph = self.ph
        with self.transaction() as cur:
            existing: set[str] = set()
            for i in range(0, len(uniq), 500):
                chunk = [r.id for r in uniq[i : i + 500]]
                cur.execute(
                    f"SELECT id FROM alerts WHERE id IN ({','.join([ph] * len(chunk))})", chunk
                )
                existing.update(row[0] for row in cur.fetchall())
            new = [r for r in uniq if r.id not in existing]
            if new:
                self.insert_alert_rows(cur, new)
                for hook in self.on_new_alerts:
                    hook(cur, new)
        return new

    def insert_alert_rows(self, cur: Any, records: Sequence[AlertRecord]) -> None:
        """INSERT the alerts (an id already stored is skipped) with ``cur``, inside the
        caller's transaction; no hook is called."""
        ph = self.ph
        cur.executemany(
            f"INSERT INTO alerts ({','.join(ALERT_COLUMNS)}) VALUES "
            f"({','.join([ph] * len(ALERT_COLUMNS))}) ON CONFLICT (id) DO NOTHING",
            [_alert_row(r) for r in records])

    def add_storms(self, records: Iterable[StormRecord]) -> list[StormRecord]:
        uniq = list({(*r.key, r.part): r for r in records}.items())
        if not uniq:
            return []
        ph = self.ph
        new: list[StormRecord] = []
        with self.transaction() as cur:
            for (source, run, lumi, rule, part), r in sorted(uniq, key=lambda kv: kv[0]):
                cur.execute(
                    "INSERT INTO storm_parts (source, run, lumi, rule, part, kind, threshold, "
                    "sample_every, seen, kept, listed, data, created) VALUES "
                    f"({','.join([ph] * 13)}) ON CONFLICT (source, run, lumi, rule, part) "
                    "DO NOTHING",
                    (source, run, lumi, rule, part, r.kind, r.threshold, r.sample_every,
                     r.seen, r.kept, r.listed, json.dumps(r.to_dict()), r.created))
                if cur.rowcount == 1:
                    new.append(r)
            if new:
                for hook in self.on_new_storms:
                    hook(cur, new)
        return new

    def storms(self, **filters: Any) -> list[Storm]:
        clauses: list[str] = []
        args: list[Any] = []
        for key, value in filters.items():
            if value is None:
                continue
            if key not in ("source", "run", "lumi", "rule"):
                raise StoreError(f"unknown storm filter '{key}'")
            _match(f"p.{key}", value, self.ph, clauses, args)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        listed = payload_json({"storm_listed": True})
        with self.transaction() as cur:
            cur.execute(
                "SELECT p.source, p.run, p.lumi, p.rule, MIN(p.kind), MAX(p.threshold), "
                "MAX(p.sample_every), MAX(p.seen), SUM(p.listed), MIN(p.created), "
                f"MAX(p.created) FROM storm_parts p{where} "
                "GROUP BY p.source, p.run, p.lumi, p.rule ORDER BY p.run, p.lumi, p.rule", args)
            rows = cur.fetchall()
            out = []
            for (source, run, lumi, rule, kind, thr, every, seen, n_listed, first,
                 last) in rows:
                cur.execute(
                    f"SELECT data FROM lumi_summaries WHERE source = {self.ph} AND "
                    f"run = {self.ph} AND lumi = {self.ph}", (source, run, lumi))
                row = cur.fetchone()
                n = int(seen)
                if row is not None:
                    n = int(json.loads(row[0]).get("rule_counts", {}).get(rule, n))
                cur.execute(
                    f"SELECT COUNT(*) FROM alerts WHERE source = {self.ph} AND run = {self.ph} "
                    f"AND lumi = {self.ph} AND rule = {self.ph} AND payload <> {self.ph}",
                    (source, run, lumi, rule, listed))
                kept = int(cur.fetchone()[0])
                out.append(Storm(source, int(run), int(lumi), rule, kind, int(thr), int(every),
                                 n, kept, int(n_listed), float(first), float(last)))
        return out

    def storm_records(self, **filters: Any) -> list[StormRecord]:
        """The stored storm record parts (with their listed alerts); filters as ``storms``."""
        clauses: list[str] = []
        args: list[Any] = []
        for key, value in filters.items():
            if value is not None:
                _match(key, value, self.ph, clauses, args)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.transaction() as cur:
            cur.execute(f"SELECT data FROM storm_parts{where} ORDER BY run, lumi, rule, created",
                        args)
            return [StormRecord.from_dict(json.loads(r[0])) for r in cur.fetchall()]

    def upsert_summaries(self, summaries: Iterable[LumiSummary]) -> None:
        rows = [
            (s.source, s.run, s.lumi, s.n_events, s.n_bad, *_summary_columns(s), s.last_seen)
            for s in summaries
        ]
        if not rows:
            return
        ph = self.ph
        with self.transaction() as cur:
            cur.executemany(
                "INSERT INTO lumi_summaries (source, run, lumi, n_events, n_bad, data, hists, "
                f"updated) VALUES ({','.join([ph] * 8)}) ON CONFLICT (source, run, lumi) DO "
                "UPDATE SET n_events = excluded.n_events, n_bad = excluded.n_bad, "
                "data = excluded.data, hists = excluded.hists, updated = excluded.updated",
                rows,
            )

    def add_summary_parts(self, parts: Iterable[LumiSummary]) -> int:
        # one transaction: new part ids and event numbers are claimed and their sums written
        # together, so a crash leaves nothing claimed-but-unadded or added-but-unclaimed.
        # Keys, parts and events are handled in sorted order, so concurrent writers on
        # PostgreSQL take their locks in the same order (no deadlock).
        by_key: dict[tuple[str, int, int], dict[str | None, list[LumiSummary]]] = {}
        for s in parts:
            by_key.setdefault(s.key, {}).setdefault(s.part, []).append(s)
        if not by_key:
            return 0
        ph = self.ph
        applied = 0
        with self.transaction() as cur:
            for key in sorted(by_key):
                source, run, lumi = key
                add: LumiSummary | None = None
                tallied: list[LumiSummary] = []
                groups = by_key[key]
                for part in sorted(groups, key=lambda p: (p is not None, p or "")):
                    if part is None:
                        new = groups[None]  # no id: merge as older writers expect
                    else:
                        cur.execute(
                            "INSERT INTO lumi_summary_parts (source, run, lumi, part, added) "
                            f"VALUES ({ph},{ph},{ph},{ph},{ph}) "
                            "ON CONFLICT (source, run, lumi, part) DO NOTHING",
                            (source, run, lumi, part, time.time()),
                        )
                        new = groups[part][:1] if cur.rowcount == 1 else []
                    for s in new:
                        if s.tally is None:  # an older writer's part: added once per id
                            add = s if add is None else add + s
                            applied += 1
                        else:
                            tallied.append(s)
                if tallied:
                    # one claim of all the new parts' events (sorted: lock order), then
                    # only the events nobody counted before are added
                    merged = tallied[0]
                    for s in tallied[1:]:
                        merged = merged + s
                    assert merged.tally is not None
                    fresh = self._claim_events(cur, key, merged.tally.events)
                    applied += sum(bool(np.isin(s.tally.events, fresh).any())
                                   for s in tallied if s.tally is not None)
                    if fresh.size:
                        if fresh.size < len(merged.tally):
                            merged = merged.only(fresh)
                        add = merged if add is None else add + merged
                if add is not None:
                    self._add_to_summary(cur, add)
        return applied

    def _claim_events(self, cur: Any, key: tuple[str, int, int], events: Any) -> Any:
        """Record the sorted event numbers ``events`` of lumisection ``key`` as counted;
        returns those that were not counted before (inside the caller's write transaction).

        SQLite: the transaction holds the database's write lock (``BEGIN IMMEDIATE``), so
        reading the counted events in the range and inserting the others cannot race
        (and is ~3x faster than ``INSERT ... RETURNING``). PostgreSQL overrides this.
        """
        ev = np.asarray(events, dtype=np.int64)
        if ev.size == 0:
            return ev
        cur.execute(
            "SELECT event FROM lumi_events WHERE source = ? AND run = ? AND lumi = ? "
            "AND event BETWEEN ? AND ?",
            (*key, int(ev[0]), int(ev[-1])),
        )
        seen = np.fromiter((r[0] for r in cur.fetchall()), dtype=np.int64)
        fresh = ev[~np.isin(ev, seen)] if seen.size else ev
        if fresh.size:
            cur.execute(
                "INSERT INTO lumi_events (source, run, lumi, event) "
                "SELECT ?, ?, ?, value FROM json_each(?)",
                (*key, json.dumps(fresh.tolist())),
            )
        return fresh

    def _add_to_summary(self, cur: Any, add: LumiSummary) -> None:
        """``lumi_summaries[add.key] += add`` with ``cur`` inside a write transaction."""
        ph = self.ph
        whole = replace(add, part=None, tally=None)
        cur.execute(
            "INSERT INTO lumi_summaries (source, run, lumi, n_events, n_bad, data, hists, "
            f"updated) VALUES ({','.join([ph] * 8)}) ON CONFLICT (source, run, lumi) DO NOTHING",
            (*whole.key, whole.n_events, whole.n_bad, *_summary_columns(whole),
             whole.last_seen),
        )
        if cur.rowcount == 1:
            return
        cur.execute(
            f"SELECT data, hists FROM lumi_summaries WHERE source = {ph} AND run = {ph} "
            f"AND lumi = {ph}{self.for_update}",
            whole.key,
        )
        merged = _row_summary(*cur.fetchone()) + whole
        cur.execute(
            f"UPDATE lumi_summaries SET n_events = {ph}, n_bad = {ph}, data = {ph}, "
            f"hists = {ph}, updated = {ph} WHERE source = {ph} AND run = {ph} AND lumi = {ph}",
            (merged.n_events, merged.n_bad, *_summary_columns(merged), merged.last_seen,
             *merged.key),
        )

    def add_deadletters(self, items: Iterable[DeadLetter]) -> int:
        rows = list({
            d.id: (d.id, d.source, d.origin, d.reason, d.run, d.lumi, json.dumps(list(d.events)),
                   d.payload, d.created)
            for d in items
        }.values())
        if not rows:
            return 0
        ph = self.ph
        sql = ("INSERT INTO deadletters (id, source, origin, reason, run, lumi, events, payload, "
               f"created) VALUES ({','.join([ph] * 9)}) ON CONFLICT (id) DO UPDATE SET "
               "resolved = NULL, resolution = NULL, created = excluded.created "
               "WHERE deadletters.resolved IS NOT NULL")
        added = 0
        with self.transaction() as cur:
            for row in rows:
                cur.execute(sql, row)
                added += max(cur.rowcount, 0)
        return added

    def _deadletter_where(self, filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        ph = self.ph
        for key, value in filters.items():
            if value is None:
                continue
            if key in ("run", "lumi", "source", "origin", "id"):
                _match(key, value, ph, clauses, args)
            elif key == "resolved":
                clauses.append("resolved IS NOT NULL" if value else "resolved IS NULL")
            else:
                raise StoreError(f"unknown dead-letter filter '{key}'")
        return clauses, args

    def _deadletter_page(self, limit: int | None, before_seq: int | None,
                         filters: dict[str, Any]) -> list[tuple[int, DeadLetter]]:
        clauses, args = self._deadletter_where(filters)
        if before_seq is not None:
            clauses.append(f"seq < {self.ph}")
            args.append(before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT {','.join(DEADLETTER_COLUMNS)} FROM deadletters{where} ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.transaction() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        return [
            (seq, DeadLetter(s, o, r, run, lumi, tuple(json.loads(ev)), bytes(p) if p else None,
                             c, res, note))
            for seq, s, o, r, run, lumi, ev, p, c, res, note in rows
        ]

    def deadletters(self, limit: int | None = 100, **filters: Any) -> list[DeadLetter]:
        return [d for _, d in self._deadletter_page(limit, None, filters)]

    def iter_deadletters(self, page_size: int = 1000, **filters: Any) -> Iterator[DeadLetter]:
        before: int | None = None
        while True:
            page = self._deadletter_page(page_size, before, filters)
            for _, d in page:
                yield d
            if len(page) < page_size:
                return
            before = page[-1][0]

    def count_deadletters(self, **filters: Any) -> int:
        clauses, args = self._deadletter_where(filters)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.transaction() as cur:
            cur.execute(f"SELECT COUNT(*) FROM deadletters{where}", args)
            return int(cur.fetchone()[0])

    def resolve_deadletters(self, ids: Iterable[str], resolution: str) -> int:
        rows = [(time.time(), resolution, i) for i in dict.fromkeys(ids)]
        if not rows:
            return 0
        ph = self.ph
        done = 0
        with self.transaction() as cur:
            for row in rows:
                cur.execute(f"UPDATE deadletters SET resolved = {ph}, resolution = {ph} "
                            f"WHERE id = {ph} AND resolved IS NULL", row)
                done += max(cur.rowcount, 0)
        return done

    def _where(self, filters: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        ph = self.ph
        for key, value in filters.items():
            if value is None:
                continue
            if key in ("kind", "rule", "source", "run", "lumi", "event"):
                _match(key, value, ph, clauses, args)
            elif key == "min_significance":
                clauses.append(f"significance >= {ph}")
                args.append(value)
            elif key == "max_p":
                clauses.append(f"p_value <= {ph}")
                args.append(value)
            elif key == "since":
                clauses.append(f"created >= {ph}")
                args.append(value)
            elif key == "min_run":
                clauses.append(f"run >= {ph}")
                args.append(value)
            elif key == "max_run":
                clauses.append(f"run <= {ph}")
                args.append(value)
            else:
                raise StoreError(f"unknown alert filter '{key}'")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def alerts(
        self, limit: int | None = None, offset: int = 0, newest_first: bool = True,
        order_by: str = "created", **filters: Any
    ) -> list[AlertRecord]:
        """Matching alerts ordered by ``order_by`` (one of ``SORTABLE_ALERT_COLUMNS``;
        descending with ``newest_first``, missing values last either way; ties newest
        first), ``limit`` of them from ``offset`` (a page of a table)."""
        where, args = self._where(filters)
        order = "DESC" if newest_first else "ASC"
        if order_by not in SORTABLE_ALERT_COLUMNS:
            raise StoreError(f"cannot order alerts by '{order_by}'")
        key = (f"created {order}" if order_by == "created" else
               f"({order_by} IS NULL), {order_by} {order}, created DESC")
        sql = f"SELECT {','.join(ALERT_COLUMNS)} FROM alerts{where} ORDER BY {key}, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self.transaction() as cur:
            cur.execute(sql, args)
            return [_row_alert(r) for r in cur.fetchall()]

    def iter_alerts(
        self, page_size: int = 1000, newest_first: bool = True, **filters: Any
    ) -> Iterator[AlertRecord]:
        """Every matching alert, ``page_size`` rows per short transaction (keyset paging on
        (created, id), so writers are never blocked and no row is skipped or repeated)."""
        where, args = self._where(filters)
        ph = self.ph
        cmp = "<" if newest_first else ">"
        order = "DESC" if newest_first else "ASC"
        after: tuple[float, str] | None = None
        while True:
            sql = f"SELECT {','.join(ALERT_COLUMNS)} FROM alerts{where}"
            page_args = list(args)
            if after is not None:
                sql += (" AND " if where else " WHERE ") + (
                    f"(created {cmp} {ph} OR (created = {ph} AND id > {ph}))")
                page_args += [after[0], after[0], after[1]]
            sql += f" ORDER BY created {order}, id LIMIT {int(page_size)}"
            with self.transaction() as cur:
                cur.execute(sql, page_args)
                page = [_row_alert(r) for r in cur.fetchall()]
            yield from page
            if len(page) < page_size:
                return
            after = (page[-1].created, page[-1].id)

    def count_alerts(self, **filters: Any) -> int:
        where, args = self._where(filters)
        with self.transaction() as cur:
            cur.execute(f"SELECT COUNT(*) FROM alerts{where}", args)
            return int(cur.fetchone()[0])

    def rule_counts(self, **filters: Any) -> dict[str, int]:
        where, args = self._where(filters)
        with self.transaction() as cur:
            cur.execute(f"SELECT rule, COUNT(*) FROM alerts{where} GROUP BY rule", args)
            return {r: int(n) for r, n in cur.fetchall()}

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        with self.transaction() as cur:
            cur.execute(
                f"SELECT {','.join(ALERT_COLUMNS)} FROM alerts WHERE id = {self.ph}", [alert_id]
            )
            row = cur.fetchone()
        return _row_alert(row) if row else None

    def summaries(self, source: str | None = None, run: int | None = None,
                  hists: bool = False) -> list[LumiSummary]:
        clauses: list[str] = []
        args: list[str | int] = []
        if source is not None:
            clauses.append(f"source = {self.ph}")
            args.append(source)
        if run is not None:
            clauses.append(f"run = {self.ph}")
            args.append(run)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.transaction() as cur:
            cols = "data, hists" if hists else "data, NULL"
            cur.execute(f"SELECT {cols} FROM lumi_summaries{where} ORDER BY run, lumi", args)
            return [_row_summary(*r) for r in cur.fetchall()]

#: SQLite page cache per connection, MB (a ceiling: pages are allocated as used)
CACHE_MB = 64


class SQLiteAlertStore(SQLAlertStore):
    """SQLite backend: one real file in WAL mode, safe across threads of one process."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # alert ids are hashes, so inserts land all over the id index: with SQLite's
            # default 2 MB page cache an alert storm re-reads index pages from the OS for
            # every row. CACHE_MB keeps a storm's index pages in memory.
            self._conn.execute(f"PRAGMA cache_size=-{CACHE_MB * 1024}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open alert store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._open_tables()

    def _table_columns(self, cur: Any, table: str) -> set[str]:
        cur.execute(f"PRAGMA table_info({table})")
        return {r[1] for r in cur.fetchall()}

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise StoreError(f"alert store {self.path}: {exc}") from None
            except BaseException:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def close(self) -> None:
        self._conn.close()
