"""The audit log on the dashboard: who changed what, for experts and admins.

Experts (role, ``alerts.access``; reading the log is the ``audit_read`` action) see the
newest ``rows`` records of the store's append-only audit log (``alerts.audit``: when (UTC),
user, role, where from, action, target, before, after) and can export it all as CSV (the
*Export CSV* button re-checks the role and offers the file as a download link; the CLI's
``hotline access audit --out FILE`` does the same on the server);
everyone else sees one line saying who may read it. The table is re-read by ``refresh()``
(the session's periodic callback) at most once per ``min_interval`` seconds; new data are
pushed only when a record was added. Tabulator shows every cell as plain text.
"""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import panel as pn

from hotline.dashboard.state import DashboardState
from hotline.errors import HotlineError

__all__ = ["AUDIT_VIEW_COLUMNS", "AuditView", "audit_frame"]

log = logging.getLogger(__name__)

AUDIT_VIEW_COLUMNS = ["seq", "when", "user", "role", "via", "action", "target", "before",
                      "after"]


def _short(value: Any, width: int = 120) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def audit_frame(entries: list[Any]) -> pd.DataFrame:
    """Audit entries (``alerts.audit.AuditEntry``) as the table's frame, newest first."""
    rows = [{"seq": e.seq,
             "when": datetime.fromtimestamp(e.at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
             "user": e.user, "role": e.role, "via": e.via, "action": e.action,
             "target": e.target, "before": _short(e.before), "after": _short(e.after)}
            for e in entries]
    return pd.DataFrame(rows, columns=AUDIT_VIEW_COLUMNS)


class AuditView(pn.viewable.Viewer):
    """The newest audit records and a CSV download (experts and admins only)."""

    def __init__(self, state: DashboardState, rows: int = 200, min_interval: float = 1.0,
                 **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.store = state.feed.store
        self.rows = rows
        self.min_interval = min_interval
        self.queries = 0  #: store reads done by refresh (for tests)
        self._last = -float("inf")
        self._last_seq = -1
        self.available = hasattr(self.store, "transaction")
        self.allowed = self.available and state.may("audit_read")
        self.table = pn.widgets.Tabulator(
            audit_frame([]), disabled=True, show_index=False, height=240,
            sizing_mode="stretch_width", layout="fit_data_stretch",
            titles={"when": "when (UTC)"}, css_classes=["hotline-audit-log"])
        self.export_w = pn.widgets.Button(label="Export CSV", width=120)
        self.export_w.on_click(self.export)
        self.link = pn.pane.HTML("", margin=(8, 10), css_classes=["hotline-audit-export"])
        if not self.available:
            text = "*the audit log is not available with this alert store*"
        elif not self.allowed:
            text = ("*the audit log (who changed what) is shown to experts and admins "
                    f"(you: {state.role})*")
        else:
            text = ""
        self.note = pn.pane.Markdown(text, margin=(0, 10), css_classes=["hotline-audit-note"])
        self.refresh(force=True)

    def _csv(self) -> io.StringIO:
        from hotline.alerts.access import AccessDenied, require
        from hotline.alerts.audit import export_csv

        out = io.StringIO()
        try:
            require(self.state.actor(), "audit_read")  # checked again at download time
        except AccessDenied as exc:
            log.warning("dashboard: %s", exc)
            return out
        export_csv(self.store, out)
        out.seek(0)
        return out

    def export(self, *_: Any) -> None:
        """Offer the whole log as a CSV download link (experts and admins only)."""
        import base64

        text = self._csv().getvalue()
        if not text:
            self.link.object = "<i>not allowed: the audit log is for experts and admins</i>"
            return
        data = base64.b64encode(text.encode()).decode()
        n = text.count("\n") - 1
        self.link.object = (f"<a download='audit_log.csv' href='data:text/csv;base64,{data}'>"
                            f"audit_log.csv</a> ({n} records)")

    def refresh(self, *_: Any, force: bool = False) -> bool:
        """Re-read the newest records (at most once per ``min_interval``); True if re-read."""
        if not self.allowed or not self.state.may("audit_read"):
            return False
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return False
        self._last = now
        from hotline.alerts.audit import entries

        self.queries += 1
        try:
            got = entries(self.store, limit=self.rows, newest_first=True)
        except HotlineError as exc:
            log.warning("dashboard: cannot read the audit log: %s", exc)
            return True
        seq = got[0].seq if got else 0
        if seq != self._last_seq:
            self._last_seq = seq
            self.table.value = audit_frame(got)
        return True

    def __panel__(self) -> pn.viewable.Viewable:
        if not self.allowed:
            return pn.Column(self.note, sizing_mode="stretch_width")
        return pn.Column(self.table, pn.Row(self.export_w, self.link), self.note,
                         sizing_mode="stretch_width")
