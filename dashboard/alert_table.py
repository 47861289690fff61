"""Alert-table rows: what one alert looks like in the dashboard's table, and how many rows move.

Owns ``alert_row`` (an ``AlertRecord`` as a row of plain values; the p-value and Z as
shown, ``"< 2.0e-06"`` when the p-value is only a bound, with their numbers alongside for
sorting and filtering; ``ack`` who acknowledged it), ``ROW_COLUMNS`` (the
row's columns, in order), ``TABLE_ROWS`` (rows a table and the shared feed keep; older
rows roll over, the store keeps everything) and ``ROWS_PER_UPDATE`` (new rows pushed to a
session's table per update). Which alerts a session's table shows (its filters, the order)
is ``state.DashboardState``'s business.
"""

from __future__ import annotations

import time
from typing import Any

from hotline.alerts.records import AlertRecord
from hotline.dashboard.alert_detail import p_text

__all__ = ["ROWS_PER_UPDATE", "ROW_COLUMNS", "TABLE_ROWS", "alert_row"]

#: rows kept in the alert table (older rows roll over; the store keeps everything)
TABLE_ROWS = 500
#: at most this many new rows are pushed to a session's table per update (newest kept): at a
#: few thousand alerts per second nobody reads them one by one, and each row costs CPU
ROWS_PER_UPDATE = 100

#: the columns of ``alert_row``, in its order
ROW_COLUMNS = ["seq", "id", "time", "created", "run", "lumi", "event", "rule", "kind", "score",
               "p", "z", "p_value", "significance", "points_to", "ack"]


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
