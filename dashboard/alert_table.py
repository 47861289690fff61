"""Alert-table rows: what one alert looks like in the dashboard's table, and how many rows move.

Owns ``alert_row`` (an ``AlertRecord`` as a row of plain values; the p-value and Z as
shown, ``"< 2.0e-06"`` when the p-value is only a bound, with their numbers alongside for
sorting and filtering; ``ack`` who acknowledged it), ``ROW_COLUMNS`` (the
row's columns, in order), ``PAGE_ROWS`` (rows of one page of the table: the store pages
and sorts, the browser gets one page), ``sort_order`` (a table sorter as the store's
``order_by`` column and direction), ``TABLE_ROWS`` (alerts the shared feed keeps) and
``ROWS_PER_UPDATE`` (new rows pushed to a session's table per update). Which alerts a
session's table shows (its filters, the page) is ``state.DashboardState``'s business.
"""

from __future__ import annotations

import time
from typing import Any

from hotline.alerts.records import AlertRecord
from hotline.dashboard.alert_detail import p_text

__all__ = ["PAGE_ROWS", "ROWS_PER_UPDATE", "ROW_COLUMNS", "TABLE_ROWS", "alert_row",
           "sort_order"]

#: newest alerts the shared feed keeps (the table pages through the store for the rest)
TABLE_ROWS = 500
#: rows of one page of the alert table (the store pages with LIMIT/OFFSET and sorts)
PAGE_ROWS = 20
#: at most this many new rows are pushed to a session's table per update (newest kept): at a
#: few thousand alerts per second nobody reads them one by one, and each row costs CPU
ROWS_PER_UPDATE = 100

#: the columns of ``alert_row``, in its order
ROW_COLUMNS = ["seq", "id", "time", "created", "run", "lumi", "event", "rule", "kind", "score",
               "p", "z", "p_value", "significance", "points_to", "ack"]


#: table column -> the store column it is sorted by (``AlertStore.alerts(order_by=...)``)
SORT_COLUMNS = {"seq": "created", "time": "created", "created": "created", "run": "run",
                "lumi": "lumi", "event": "event", "rule": "rule", "kind": "kind",
                "score": "score", "p": "p_value", "p_value": "p_value", "z": "significance",
                "significance": "significance"}


def sort_order(sorters: list[dict[str, Any]] | None) -> tuple[str, bool]:
    """(store column, descending) of a Tabulator ``sorters`` list (its first sorter; a
    column the store cannot sort by, or none, gives newest first)."""
    for s in sorters or []:
        col = SORT_COLUMNS.get(str(s.get("field", "")))
        if col is not None:
            return col, str(s.get("dir", "desc")) != "asc"
    return "created", True


def alert_row(a: AlertRecord, seq: int = 0, ack: str = "") -> dict[str, Any]:
    """One alert-table row (plain values only); ``seq`` orders rows newest-first in the table;
    ``ack``: who acknowledged the alert ("" if nobody)."""
    p, z = p_text(a)
    return {
        "seq": seq,
        "id": a.id,
        "time": time.strftime("%H:%M:%S", time.localtime(a.created)),
        "created": a.created,
        "run": a.run,
        "lumi": a.lumi,
        "event": a.event,
        "rule": a.rule,
        "kind": a.kind,
        "score": float("nan") if a.score is None else a.score,
        "p": p,
        "z": z,
        "p_value": float("nan") if a.p_value is None else a.p_value,
        "significance": (float("nan") if a.significance is None
                         else min(a.significance, 99.0)),
        # AE alerts: the object type the score points to (a derived MET followed to the
        # anomalous visible type); empty for classic rules
        "points_to": str((a.payload or {}).get("explained_by")
                         or (a.payload or {}).get("top_type") or ""),
        "ack": ack,
    }
