"""Timing a click on an alert row in a real browser until its explanation is on screen.

``click_until_shown(row, shown)`` clicks an alert-table row (Playwright locator) and polls
``shown()`` until it is true; a click lost to a table re-render (new alerts arriving) is
retried. ``why_title(page)`` is the "why" card's title (``"RULE in run R LS L ..."``), and
``time_clicks(page, n, start)`` clicks ``n`` rows one after the other and returns, per click,
``ClickTime``: the seconds the browser itself took from the click (the ``pointerdown``
event's time stamp) to the first animation frame whose "why" card names the clicked alert
(``expected_title``; recorded in the page by ``WATCH_JS``, so a busy machine answering
Playwright's queries does not add to it), and the seconds the test driver saw from before
its click to noticing the title. Used by the control-room browser tests and
``benchmarks/bench_dashboard.py`` (the < 0.5 s click-to-explanation figure).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["ROWS", "WATCH_JS", "ClickTime", "click_until_shown", "expected_title",
           "time_clicks", "why_title"]

#: the rows of the dashboard's alert table
ROWS = ".hotline-alert-table .tabulator-row"
_TITLE = re.compile(r" in run \d+ LS \d+")

#: armed before a click: from the next ``pointerdown`` (its event time stamp) to the first
#: animation frame in which a ``.hotline-why`` element (in any shadow root) contains the
#: text ``want``; the result goes to ``window.__hotline_click`` ({ms} or {error})
WATCH_JS = """
(want) => {
  const deep = (root, out) => {
    if (root.shadowRoot) deep(root.shadowRoot, out);
    for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains('hotline-why')) out.push(el);
      if (el.shadowRoot) deep(el.shadowRoot, out);
    }
    return out;
  };
  const text = el => (el.shadowRoot ? el.shadowRoot.textContent : '') + el.textContent;
  const els = deep(document, []);
  const state = window.__hotline_click = {t0: null, ms: null, error: null};
  if (!els.length) { state.error = 'no .hotline-why element'; return; }
  if (!window.__hotline_click_armed) {  // one listener: the last click counts (retries)
    window.__hotline_click_armed = true;
    document.addEventListener('pointerdown', e => { window.__hotline_click.t0 = e.timeStamp; },
                              true);
  }
  const frame = now => {
    if (state.t0 !== null && els.some(el => text(el).includes(want))) {
      state.ms = now - state.t0;
      return;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}
"""


class ClickTime(NamedTuple):
    """One timed click: seconds in the browser (click event -> frame showing the title) and
    seconds the test driver saw (before its click -> title noticed)."""

    browser: float
    driver: float


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


def _cell(row: Any, field: str) -> str:
    return row.locator(f'[tabulator-field="{field}"]').first.inner_text(timeout=5000).strip()


def expected_title(row: Any) -> str:
    """The start of the why card's title for the alert of table row ``row``:
    ``"RULE in run R LS L event E"`` (DQM alerts: no event)."""
    rule, run, lumi = _cell(row, "rule"), _cell(row, "run"), _cell(row, "lumi")
    title = f"{rule} in run {run} LS {lumi}"
    return title if _cell(row, "kind") == "dqm" else f"{title} event {_cell(row, 'event')}"


def time_clicks(page: Any, n: int = 8, start: int = 0, timeout: float = 10.0,
                tries: int = 3) -> list[ClickTime]:
    """Click ``n`` alert rows (from row ``start``, cycling over the rows shown; not the
    selected one: a second click deselects) and time each until the why card's title names
    that row's alert (``expected_title``; a click lost to a table re-render is retried)."""
    rows = page.locator(ROWS)
    out = []
    for i in range(start, start + n):
        row = rows.nth(i % max(rows.count(), 1))
        want = expected_title(row)
        page.evaluate(WATCH_JS, want)
        for _ in range(tries):
            t0 = time.perf_counter()
            row.click(timeout=5000)
            try:
                page.wait_for_function(
                    "() => window.__hotline_click.ms !== null || window.__hotline_click.error",
                    timeout=timeout * 1000, polling=10)
                break
            except Exception:  # noqa: BLE001 - the click was lost: click again
                continue
        else:
            raise AssertionError(f"the why card never showed {want!r}")
        driver = time.perf_counter() - t0
        state = page.evaluate("() => window.__hotline_click")
        if state["error"]:
            raise AssertionError(state["error"])
        out.append(ClickTime(state["ms"] / 1000, driver))
    return out
