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
``ConfigError`` in one line and nothing is stored. Who may acknowledge is the caller's
business (the dashboard asks ``auth``); this module is the single write path to wrap with
role checks and an audit record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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


def _insert(store: Any, rows: Sequence[Acknowledgement]) -> None:
    ph = store.ph
    with store.transaction() as cur:
        for a in rows:
            cur.execute(f"INSERT INTO acknowledgements ({_COLS}) VALUES ({','.join([ph] * 9)})",
                        (a.source, a.run, a.first_lumi, a.last_lumi, a.alert_id, a.what,
                         a.acked_by, a.comment, a.at))


def _describe(alert: AlertRecord) -> str:
    z = alert.significance
    return (f"{alert.kind} alert {alert.rule}, run {alert.run} LS {alert.lumi} event "
            f"{alert.event}" + (f" (Z {z:.1f})" if z is not None and z == z else ""))


def acknowledge_alert(store: Any, alert: AlertRecord, user: str, comment: str,
                      at: float | None = None) -> Acknowledgement:
    """Store that ``user`` acknowledged ``alert`` with ``comment``; returns the row."""
    user, comment = _check(user, comment)
    ack = Acknowledgement(alert.source, int(alert.run), int(alert.lumi), int(alert.lumi),
                          alert.id, _describe(alert), user, comment,
                          time.time() if at is None else float(at))
    _insert(store, [ack])
    return ack


def acknowledge_lumis(store: Any, source: str, run: int, lumis: Iterable[int], user: str,
                      comment: str, what: str = "", at: float | None = None,
                      ) -> list[Acknowledgement]:
    """Store that ``user`` acknowledged the flags of ``lumis`` of ``run`` (one row per range
    of consecutive lumisections); ``what``: the flags seen, in plain words."""
    user, comment = _check(user, comment)
    ranges = merge_ranges(int(x) for x in lumis)
    if not ranges:
        raise ConfigError(f"run {run}: no lumisections given to acknowledge")
    now = time.time() if at is None else float(at)
    rows = [Acknowledgement(source, int(run), a, b, "", what or "lumisection flags", user,
                            comment, now) for a, b in ranges]
    _insert(store, rows)
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
