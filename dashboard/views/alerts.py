"""Alert table: newest first, filterable by rule, run, significance and the lumisections
selected on the status strip (Tabulator), paged and sorted by the store.

The browser holds one page (``PAGE_ROWS`` rows): the store sorts (a click on a column
header) and pages (*newer* / *older*) with ``LIMIT``/``OFFSET``, so a store of 100,000
alerts costs one page of rows, never all of them. New alerts go on top of the first page
while it is sorted newest first; a filter change re-queries the store once. Selecting a
row selects the alert in the state, which drives the "why", event-display and DQM views.
The p-value and Z columns show bounds as bounds ("< 2.0e-06"); *ack by* says who
acknowledged an alert. Their header sorts by the numbers behind the text (``p_value``,
``significance``): the store orders the page by them, and the browser, which sorts the rows
it holds by the clicked column, compares the same numbers the same way (``STORE_SORTER``),
so it never re-sorts the store's page as text.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter, ScientificFormatter
from panel.io.model import JSCode

from hotline.dashboard.alert_table import PAGE_ROWS, ROW_COLUMNS, ROWS_PER_UPDATE, sort_order
from hotline.dashboard.state import DashboardState

__all__ = ["NUMERIC_TEXT_COLUMNS", "STORE_SORTER", "AlertTable", "rows_frame"]

#: Tabulator sorter (JavaScript) comparing two rows by the number in field FIELD as the
#: store orders it (``AlertStore.alerts``: missing values last in both directions; Tabulator
#: swaps the rows for a descending sort, hence ``dir``)
STORE_SORTER = """(a, b, aRow, bRow, column, dir) => {
  const x = aRow.getData().FIELD, y = bRow.getData().FIELD;
  const nx = x === null || x === undefined || Number.isNaN(x);
  const ny = y === null || y === undefined || Number.isNaN(y);
  if (nx || ny) return nx === ny ? 0 : (nx === (dir === "asc") ? 1 : -1);
  return x - y;
}"""
#: columns shown as text, sorted by a hidden number: shown column -> numeric column
NUMERIC_TEXT_COLUMNS = {"p": "p_value", "z": "significance"}


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


class AlertTable(pn.viewable.Viewer):
    """Filters + the live Tabulator of alerts."""

    def __init__(self, state: DashboardState, page_rows: int = PAGE_ROWS,
                 **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.page_rows = page_rows
        self.offset = 0  #: first row of the page shown (0: the first page)
        self.total = 0  #: alerts matching the filters
        self.order: tuple[str, bool] = ("created", True)  #: store column, descending
        self.rule_w = pn.widgets.MultiChoice.from_param(
            state.param.rule_filter, name="rules", placeholder="all rules", width=260)
        self.run_w = pn.widgets.IntInput.from_param(state.param.run_filter, name="run",
                                                    placeholder="all runs", width=110)
        self.sig_w = pn.widgets.FloatSlider.from_param(state.param.min_significance,
                                                       name="min significance (Z)", step=0.5,
                                                       width=180)
        rows, self.total = state.alert_page(0, page_rows)
        self.table = pn.widgets.Tabulator(
            rows_frame(rows),
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
            configuration={"columns": [
                {"field": shown, "sorter": JSCode(STORE_SORTER.replace("FIELD", number))}
                for shown, number in NUMERIC_TEXT_COLUMNS.items()]},
        )
        self.count = pn.pane.Markdown("", margin=(0, 10))
        self.newest_w = pn.widgets.Button(label="« newest", width=90, disabled=True)
        self.newer_w = pn.widgets.Button(label="‹ newer", width=90, disabled=True)
        self.older_w = pn.widgets.Button(label="older ›", width=90)
        self.newest_w.on_click(lambda *_: self.show_page(0))
        self.newer_w.on_click(lambda *_: self.show_page(self.offset - self.page_rows))
        self.older_w.on_click(lambda *_: self.show_page(self.offset + self.page_rows))
        self.table.param.watch(self._on_select, "selection")
        self.table.param.watch(self._on_sort, "sorters")
        state.param.watch(self._on_tick, "tick")
        state.param.watch(self._on_filters, "filter_version")
        self._update_count()

    def _update_count(self) -> None:
        n = len(self.table.value)
        first = self.offset + 1 if n else 0
        pages = max(1, -(-self.total // self.page_rows))
        text = (f"alerts {first:,}-{self.offset + n:,} of {self.total:,} - page "
                f"{self.offset // self.page_rows + 1:,} of {pages:,} "
                f"({self.state.alert_total:,} stored")
        if self.state.rows_skipped:
            text += (f"; {self.state.rows_skipped:,} not pushed live while more than "
                     f"{ROWS_PER_UPDATE} per second arrived - page to see them")
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
        self.newest_w.disabled = self.newer_w.disabled = self.offset == 0
        self.older_w.disabled = self.offset + n >= self.total

    @property
    def live(self) -> bool:
        """New alerts go on top: the first page, newest first."""
        return self.offset == 0 and self.order == ("created", True)

    def _on_tick(self, *_: Any) -> None:
        rows = self.state.new_alert_rows()
        if self.state.new_matching:
            self.total += self.state.new_matching
        if rows:
            if self.live:
                frame = pd.concat([rows_frame(rows), self.table.value], ignore_index=True)
                self._set_rows(frame.iloc[: self.page_rows].reset_index(drop=True))
        self._update_count()

    def _set_rows(self, frame: pd.DataFrame) -> None:
        """Show ``frame`` and keep the selected alert selected if it is still on the page."""
        sel = self.state.selected_id
        with pn.io.hold():
            self.table.value = frame
            ids = list(frame["id"])
            want = [ids.index(sel)] if sel in ids else []
            if self.table.selection != want:
                self._quiet = True
                try:
                    self.table.selection = want
                finally:
                    self._quiet = False

    def show_page(self, offset: int) -> None:
        """Show the page starting at row ``offset`` (clamped) in the current order."""
        offset = max(0, min(offset, max(0, self.total - 1)))
        offset -= offset % self.page_rows
        rows, self.total = self.state.alert_page(offset, self.page_rows, *self.order)
        self.offset = offset
        self._set_rows(rows_frame(rows))
        self._update_count()

    def _on_sort(self, event: Any) -> None:
        order = sort_order(event.new)
        if order != self.order:
            self.order = order
            self.show_page(0)

    def _on_filters(self, *_: Any) -> None:
        self.table.selection = []
        self.show_page(0)

    _quiet = False  #: the selection is being re-pointed after new rows: not a click

    def _on_select(self, event: Any) -> None:
        sel = event.new
        if not sel or self._quiet:
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
            pn.FlexBox(self.newest_w, self.newer_w, self.older_w, self.count,
                       align_items="center"),
            sizing_mode="stretch_width",
        )
