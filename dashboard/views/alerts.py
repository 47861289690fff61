"""Alert table: newest first, filterable by rule, run, significance and the lumisections
selected on the status strip (Tabulator).

New alerts are ``stream``-ed into the table (``rollover`` keeps the newest rows);
a filter change re-queries the store once. Selecting a row selects the alert in
the state, which drives the "why", event-display and DQM views. The p-value and Z columns
show bounds as bounds ("< 2.0e-06"); *ack by* says who acknowledged an alert.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter, ScientificFormatter

from hotline.dashboard.alert_table import ROW_COLUMNS, ROWS_PER_UPDATE, TABLE_ROWS
from hotline.dashboard.state import DashboardState

__all__ = ["AlertTable", "rows_frame"]


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


class AlertTable(pn.viewable.Viewer):
    """Filters + the live Tabulator of alerts."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.rule_w = pn.widgets.MultiChoice.from_param(
            state.param.rule_filter, name="rules", placeholder="all rules", width=260)
        self.run_w = pn.widgets.IntInput.from_param(state.param.run_filter, name="run",
                                                    placeholder="all runs", width=110)
        self.sig_w = pn.widgets.FloatSlider.from_param(state.param.min_significance,
                                                       name="min significance (Z)", step=0.5,
                                                       width=180)
        self.table = pn.widgets.Tabulator(
            rows_frame(state.alert_rows()),
            selectable=1,
            disabled=True,
            show_index=False,
            hidden_columns=["id", "created", "seq", "p_value", "significance"],
            sorters=[{"field": "seq", "dir": "desc"}],
            formatters={"event": NumberFormatter(format="0"),
                        "run": NumberFormatter(format="0"),
                        "score": NumberFormatter(format="0.000", nan_format="-",
                                                 null_format="-"),
                        "p_value": ScientificFormatter(precision=1, nan_format="-",
                                                       null_format="-"),
                        "significance": NumberFormatter(format="0.00", nan_format="-",
                                                        null_format="-")},
            titles={"lumi": "LS", "p": "p", "z": "Z", "points_to": "points to",
                    "ack": "ack by"},
            height=330,
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            css_classes=["hotline-alert-table"],
        )
        self.count = pn.pane.Markdown("", margin=(0, 10))
        self.table.param.watch(self._on_select, "selection")
        state.param.watch(self._on_tick, "tick")
        state.param.watch(self._on_filters, "filter_version")
        self._update_count()

    def _update_count(self) -> None:
        text = f"{len(self.table.value):,} newest alerts shown ({self.state.alert_total:,} stored"
        if self.state.rows_skipped:
            text += (f"; {self.state.rows_skipped:,} skipped while more than {ROWS_PER_UPDATE} "
                     "per second arrived - filter to see them")
        text += ")"
        if self.state.ls_first is not None:
            text += f"; only run {self.state.run} {self.state.selection_label()}"
        storms = self.state.storms()
        if storms:  # the storm guard's storms: counts exact, the rest of the alerts listed
            text += "  \n" + "; ".join(st.describe() for st in storms[-3:])
            if len(storms) > 3:
                text += f" (and {len(storms) - 3} more storms)"
        if text != self.count.object:  # no message when nothing changed
            self.count.object = text

    def _on_tick(self, *_: Any) -> None:
        rows = self.state.new_alert_rows()
        if rows:
            frame = rows_frame(rows[::-1])  # oldest first: appended rows end up at the bottom
            self.table.stream(frame, rollover=TABLE_ROWS, follow=False)
        self._update_count()

    def _on_filters(self, *_: Any) -> None:
        self.table.selection = []
        self.table.value = rows_frame(self.state.alert_rows())
        self._update_count()

    def _on_select(self, event: Any) -> None:
        sel = event.new
        if not sel:
            return
        try:
            alert_id = self.table.value.iloc[sel[0]]["id"]
        except (IndexError, KeyError):
            return
        with pn.io.hold():  # views change Bokeh models: batch and dispatch them unlocked
            self.state.select(str(alert_id))

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.FlexBox(self.rule_w, self.run_w, self.sig_w),
            self.table,
            self.count,
            sizing_mode="stretch_width",
        )
