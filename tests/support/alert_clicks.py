"""Timing a click on an alert row in a real browser until its explanation is on screen.

``click_until_shown(row, shown)`` clicks an alert-table row (Playwright locator) and polls
``shown()`` until it is true; a click lost to a table re-render (new alerts arriving) is
retried. ``why_title(page)`` is the "why" card's title (``"RULE in run R LS L ..."``), and
``time_clicks(page, n, start)`` clicks ``n`` rows one after the other and returns the seconds from
each click to the why card naming the clicked alert. Used by the control-room browser
tests and ``benchmarks/bench_dashboard.py`` (the < 0.5 s click-to-explanation figure).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ROWS", "click_until_shown", "time_clicks", "why_title"]

#: the rows of the dashboard's alert table
ROWS = ".hotline-alert-table .tabulator-row"
_TITLE = re.compile(r" in run \d+ LS \d+")


def click_until_shown(row: Any, shown: Callable[[], Any], timeout: float = 10.0,
                      tries: int = 3) -> float:
    """Click ``row`` until ``shown()`` is true; seconds from the successful click to it.
    Raises ``AssertionError`` when ``tries`` clicks of ``timeout`` seconds each never show it."""
    for _ in range(tries):
        try:
            row.scroll_into_view_if_needed(timeout=5000)
        except Exception:  # noqa: BLE001 - re-rendered: the click below finds it again
            pass
        t0 = time.perf_counter()
        row.click(timeout=5000)
        while time.perf_counter() - t0 < timeout:
            if shown():
                return time.perf_counter() - t0
            time.sleep(0.005)
    raise AssertionError(f"nothing shown after {tries} clicks on the row")


def why_title(page: Any) -> str:
    """The why card's title as rendered ("" before an alert is selected)."""
    why = page.get_by_text(_TITLE)
    try:
        return why.first.inner_text(timeout=200) if why.count() else ""
    except Exception:  # noqa: BLE001 - not rendered yet
        return ""


def time_clicks(page: Any, n: int = 8, start: int = 0) -> list[float]:
    """Seconds from a click on each of ``n`` alert rows (from row ``start``, cycling over the
    rows shown; not the selected one: a second click deselects) to the why card titled
    with that row's rule, run and lumisection (a new title)."""
    rows = page.locator(ROWS)
    out = []
    for i in range(start, start + n):
        row = rows.nth(i % max(rows.count(), 1))
        cells = row.inner_text(timeout=5000)
        before = why_title(page)

        def shown(before: str = before, cells: str = cells) -> bool:
            now = why_title(page)
            return bool(now) and now != before and now.split(" in run ")[0] in cells

        out.append(click_until_shown(row, shown))
    return out
