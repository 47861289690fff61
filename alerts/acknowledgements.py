"""The crew's acknowledgements of alerts and lumisection flags: who, when, why; stored.

Owns the ``acknowledgements`` table of the alert store (both SQL backends) and the small
write/read API every front end uses (the dashboard's "why" card and status strip, the run
report): a shifter who has looked at an alert, or at the flag of a range of lumisections,
says so with a comment. Rows are only ever added (``Acknowledgement``: the run, the
lumisection range, the alert id or ``""`` for a lumisection flag, what was acknowledged in
plain words, the user, the comment, the time), so the history is kept.

- ``acknowledge_alert(store, alert, user, comment)``: one row for one alert.
- ``acknowledge_lumis(store, source, run, lumis, user, comment, what)``: one row per range
  of consecutive lumisections (``merge_ranges``).
- ``acknowledgements(store, run, source)``: a run's rows, oldest first;
  ``acknowledged(store, alert_ids)``: the latest row per acknowledged alert id.

Input is checked here, whoever calls: an empty user or comment, or no lumisections, is a
``ConfigError`` in one line and nothing is stored. Who may acknowledge is checked here too:
given the ``actor`` doing it (``alerts.access``; the dashboard passes its session's), the
write needs its role (``ack_alert`` / ``ack_flag``, shifters and up; ``AccessDenied``
otherwise, nothing stored), is stored under the actor's name, and appends one audit row
(``alerts.audit``: the latest earlier acknowledgement before, this one after) in the same
transaction as the acknowledgement rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hotline.alerts.access import Actor, require
from hotline.alerts.lumi_status import merge_ranges
from hotline.alerts.records import AlertRecord
from hotline.errors import ConfigError

__all__ = ["Acknowledgement", "acknowledge_alert", "acknowledge_lumis", "acknowledged",
           "acknowledgements"]

_COLS = "source, run, first_lumi, last_lumi, alert_id, what, acked_by, comment, at"
#: ids per ``IN (...)`` query of ``acknowledged``
_CHUNK = 500


@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledgement: of alert ``alert_id``, or (``alert_id == ""``) of the flags of
    lumisections ``first_lumi``..``last_lumi`` of ``run``; ``what`` says what was seen."""

    source: str
    run: int
    first_lumi: int
    last_lumi: int
    alert_id: str
    what: str
    acked_by: str
    comment: str
    at: float

    @property
    def lumis(self) -> str:
        """``"LS 12"`` or ``"LS 12-14"``."""
        return (f"LS {self.first_lumi}" if self.first_lumi == self.last_lumi
                else f"LS {self.first_lumi}-{self.last_lumi}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check(user: str, comment: str) -> tuple[str, str]:
    user, comment = (user or "").strip(), (comment or "").strip()
    if not user:
        raise ConfigError("an acknowledgement needs the user name of who acknowledges")
    if not comment:
        raise ConfigError("an acknowledgement needs a comment saying what you checked")
    return user, comment


def _insert(store: Any, rows: Sequence[Acknowledgement], actor: Actor | None = None,
            action: str = "", target: str = "",
            before: Callable[[Any], Any] | None = None) -> None:
    """Insert ``rows``; with ``actor``, one audit row (``before(cur)``: the state before,
    read inside the same transaction; after: ``rows``) is appended with them."""
    ph = store.ph
    with store.transaction() as cur:
        prior = before(cur) if actor is not None and before is not None else None
        for a in rows:
            cur.execute(f"INSERT INTO acknowledgements ({_COLS}) VALUES ({','.join([ph] * 9)})",
                        (a.source, a.run, a.first_lumi, a.last_lumi, a.alert_id, a.what,
                         a.acked_by, a.comment, a.at))
        if actor is not None:
            from hotline.alerts.audit import append

            after = [_audit_state(a) for a in rows]
            append(cur, store, actor, action, target, prior,
                   after[0] if len(after) == 1 else after)


def _audit_state(a: Acknowledgement) -> dict[str, Any]:
    """An acknowledgement as the audit log's before/after value."""
    return {"lumis": a.lumis, "what": a.what, "acked_by": a.acked_by, "comment": a.comment}


def _describe(alert: AlertRecord) -> str:
    z = alert.significance
    return (f"{alert.kind} alert {alert.rule}, run {alert.run} LS {alert.lumi} event "
            f"{alert.event}" + (f" (Z {z:.1f})" if z is not None and z == z else ""))


def acknowledge_alert(store: Any, alert: AlertRecord, user: str, comment: str,
                      at: float | None = None, actor: Actor | None = None) -> Acknowledgement:
    """Store that ``user`` acknowledged ``alert`` with ``comment``; returns the row.

    With ``actor``: the role is checked first (``ack_alert``), the row is stored under the
    actor's name (``user`` is ignored) and one audit row is written with it."""
    if actor is not None:
        require(actor, "ack_alert")
        user = actor.user
    user, comment = _check(user, comment)
    ack = Acknowledgement(alert.source, int(alert.run), int(alert.lumi), int(alert.lumi),
                          alert.id, _describe(alert), user, comment,
                          time.time() if at is None else float(at))

    def before(cur: Any) -> Any:
        cur.execute(f"SELECT {_COLS} FROM acknowledgements WHERE alert_id = {store.ph} "
                    "ORDER BY seq DESC LIMIT 1", (alert.id,))
        prev = _rows(cur)
        return _audit_state(prev[0]) if prev else None

    _insert(store, [ack], actor, "ack_alert", alert.id, before)
    return ack


def acknowledge_lumis(store: Any, source: str, run: int, lumis: Iterable[int], user: str,
                      comment: str, what: str = "", at: float | None = None,
                      actor: Actor | None = None) -> list[Acknowledgement]:
    """Store that ``user`` acknowledged the flags of ``lumis`` of ``run`` (one row per range
    of consecutive lumisections); ``what``: the flags seen, in plain words.

    With ``actor``: the role is checked first (``ack_flag``), the rows are stored under the
    actor's name and one audit row (all ranges) is written with them."""
    if actor is not None:
        require(actor, "ack_flag")
        user = actor.user
    user, comment = _check(user, comment)
    ranges = merge_ranges(int(x) for x in lumis)
    if not ranges:
        raise ConfigError(f"run {run}: no lumisections given to acknowledge")
    now = time.time() if at is None else float(at)
    rows = [Acknowledgement(source, int(run), a, b, "", what or "lumisection flags", user,
                            comment, now) for a, b in ranges]

    def before(cur: Any) -> Any:
        """The earlier acknowledgements of any of these lumisections' flags."""
        ph = store.ph
        cur.execute(f"SELECT {_COLS} FROM acknowledgements WHERE source = {ph} AND run = {ph} "
                    "AND alert_id = '' ORDER BY seq", (source, int(run)))
        prev = [_audit_state(p) for p in _rows(cur)
                if any(p.first_lumi <= b and p.last_lumi >= a for a, b in ranges)]
        return prev or None

    _insert(store, rows, actor, "ack_flag", f"{source}/run {int(run)}", before)
    return rows


def _rows(cur: Any) -> list[Acknowledgement]:
    return [Acknowledgement(str(s), int(r), int(a), int(b), str(i), str(w), str(u), str(c),
                            float(t)) for s, r, a, b, i, w, u, c, t in cur.fetchall()]


def acknowledgements(store: Any, run: int, source: str | None = None) -> list[Acknowledgement]:
    """Every acknowledgement of ``run`` (alerts and lumisection flags), oldest first."""
    ph = store.ph
    sql = f"SELECT {_COLS} FROM acknowledgements WHERE run = {ph}"
    args: list[Any] = [int(run)]
    if source is not None:
        sql += f" AND source = {ph}"
        args.append(source)
    with store.transaction() as cur:
        cur.execute(sql + " ORDER BY seq", args)
        return _rows(cur)


def acknowledged(store: Any, alert_ids: Iterable[str]) -> dict[str, Acknowledgement]:
    """The latest acknowledgement of each of ``alert_ids`` that has one."""
    ids = list(dict.fromkeys(str(i) for i in alert_ids if i))
    out: dict[str, Acknowledgement] = {}
    ph = store.ph
    for k in range(0, len(ids), _CHUNK):
        chunk = ids[k:k + _CHUNK]
        with store.transaction() as cur:
            cur.execute(f"SELECT {_COLS} FROM acknowledgements WHERE alert_id IN "
                        f"({','.join([ph] * len(chunk))}) ORDER BY seq", chunk)
            for a in _rows(cur):
                out[a.alert_id] = a
    return out
