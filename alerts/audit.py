"""The audit log: one append-only row per write, with who, role, when, what, before/after.

Owns the ``audit_log`` table of the alert store (both backends). Every write function that
takes an ``Actor`` (``alerts.access``) appends its row with ``append(cur, ...)`` inside the
same transaction as the write, so a write and its record are committed together or not at
all; ``record`` writes a row in a transaction of its own (for writes outside the store,
such as starting a replay). Rows are never updated or deleted: the database refuses it
(SQLite triggers, a PostgreSQL trigger function; ``append_only_sql``).

``entries`` / ``iter_entries`` read the log (filters: user, action, since, until), oldest
first; ``export_jsonl`` and ``export_csv`` write it for the e-log or an auditor
(``hotline access audit --out FILE``).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

__all__ = ["AUDIT_COLUMNS", "AUDIT_SCHEMA_SQL", "AuditEntry", "append", "append_only_sql",
           "count", "entries", "export_csv", "export_jsonl", "iter_entries", "record"]

AUDIT_SCHEMA_SQL = [
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq {autoinc}, at DOUBLE PRECISION NOT NULL, user_name TEXT NOT NULL,
        role TEXT NOT NULL, via TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
        before TEXT, after TEXT)""",
    "CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at)",
]

AUDIT_COLUMNS = ("seq", "at", "user_name", "role", "via", "action", "target", "before",
                 "after")

_SQLITE_GUARD = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]

_POSTGRES_GUARD = [
    "CREATE OR REPLACE FUNCTION hotline_audit_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION hotline_audit_append_only()",
]


def append_only_sql(ph: str) -> list[str]:
    """Statements making ``audit_log`` append-only (``ph``: the backend's placeholder)."""
    return _POSTGRES_GUARD if ph == "%s" else _SQLITE_GUARD


@dataclass(frozen=True)
class AuditEntry:
    """One audit row; ``before`` / ``after`` are the JSON-able states (None: absent)."""

    seq: int
    at: float
    user: str
    role: str
    via: str
    action: str
    target: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str,
                                                 allow_nan=False)


def append(cur: Any, store: Any, actor: Any, action: str, target: str,
           before: Any = None, after: Any = None) -> None:
    """Append one row with ``cur`` inside the caller's write transaction."""
    ph = store.ph
    cur.execute("INSERT INTO audit_log (at, user_name, role, via, action, target, before, "
                f"after) VALUES ({','.join([ph] * 8)})",
                (time.time(), actor.user, actor.role, actor.via, action, str(target),
                 _dump(before), _dump(after)))


def record(store: Any, actor: Any, action: str, target: str, before: Any = None,
           after: Any = None) -> None:
    """Append one row in a transaction of its own (writes that are not store rows)."""
    with store.transaction() as cur:
        append(cur, store, actor, action, target, before, after)


def _where(store: Any, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    ph = store.ph
    clauses: list[str] = []
    args: list[Any] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "user":
            clauses.append(f"user_name = {ph}")
        elif key == "action":
            clauses.append(f"action = {ph}")
        elif key == "since":
            clauses.append(f"at >= {ph}")
        elif key == "until":
            clauses.append(f"at < {ph}")
        elif key == "after_seq":
            clauses.append(f"seq > {ph}")
        else:
            from hotline.errors import StoreError

            raise StoreError(f"unknown audit filter '{key}'")
        args.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _row(r: Any) -> AuditEntry:
    seq, at, user, role, via, action, target, before, after = r
    return AuditEntry(int(seq), float(at), user, role, via, action, target,
                      None if before is None else json.loads(before),
                      None if after is None else json.loads(after))


def entries(store: Any, limit: int | None = None, newest_first: bool = False,
            **filters: Any) -> list[AuditEntry]:
    """Audit rows matching ``filters`` (user, action, since, until, after_seq)."""
    where, args = _where(store, filters)
    sql = (f"SELECT {','.join(AUDIT_COLUMNS)} FROM audit_log{where} ORDER BY seq "
           f"{'DESC' if newest_first else 'ASC'}")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with store.transaction() as cur:
        cur.execute(sql, args)
        return [_row(r) for r in cur.fetchall()]


def iter_entries(store: Any, page_size: int = 1000, **filters: Any) -> Iterator[AuditEntry]:
    """Every matching row, oldest first, ``page_size`` per short transaction."""
    after = filters.pop("after_seq", None) or 0
    while True:
        page = entries(store, limit=page_size, after_seq=after, **filters)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1].seq


def count(store: Any, **filters: Any) -> int:
    where, args = _where(store, filters)
    with store.transaction() as cur:
        cur.execute(f"SELECT COUNT(*) FROM audit_log{where}", args)
        return int(cur.fetchone()[0])


def export_jsonl(store: Any, out: IO[str], **filters: Any) -> int:
    """Write the matching rows as JSON lines; returns how many."""
    n = 0
    for e in iter_entries(store, **filters):
        out.write(json.dumps(e.to_dict(), sort_keys=True, default=str) + "\n")
        n += 1
    return n


def export_csv(store: Any, out: IO[str], **filters: Any) -> int:
    """Write the matching rows as CSV (before/after as JSON text); returns how many."""
    w = csv.writer(out)
    w.writerow(["seq", "at_utc", "user", "role", "via", "action", "target", "before",
                "after"])
    n = 0
    for e in iter_entries(store, **filters):
        w.writerow([e.seq, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at)), e.user,
                    e.role, e.via, e.action, e.target, _dump(e.before) or "",
                    _dump(e.after) or ""])
        n += 1
    return n
