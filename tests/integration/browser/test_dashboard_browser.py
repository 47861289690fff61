"""The dashboard in a real headless Chromium: first render, live alerts, drill-down, login."""

from __future__ import annotations

import time

import pytest

from tests.integration.browser.conftest import ARTIFACTS, PASSWORD, wait_for

pytestmark = pytest.mark.browser


SERIES_JS = """() => {
  const out = [];
  for (const doc of Bokeh.documents)
    for (const m of doc._all_models.values())
      if (m.data !== undefined && m.data.lumi !== undefined && m.data.frac !== undefined)
        out.push(Array.from(m.data.lumi));
  return out;
}"""


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1300})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def wait_until(cond, timeout: float) -> bool:
    """True as soon as ``cond()`` holds, False after ``timeout`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_live_dashboard_replay_and_drilldown(browser, dashboard_server):
    url = dashboard_server["url"]
    # --- log in (basic auth, optional mode) so the replay controls are enabled
    page, errors = open_page(browser, url)
    page.goto(url + "/login")
    page.fill("input[name=username]", "shifter")
    page.fill("input[name=password]", PASSWORD)
    errors.clear()  # the login page itself is Panel's template, not ours
    t0 = time.monotonic()
    page.click("button[type=submit], input[type=submit], #login-submit")
    page.wait_for_selector("canvas", timeout=20_000)
    first_render = time.monotonic() - t0
    page.wait_for_selector("#hotline-status", timeout=10_000)
    assert page.get_by_text("user: shifter").count() == 1

    # --- the stored AE alert is listed; clicking it shows contributions and the event
    rows = page.locator(".hotline-alert-table .tabulator-row")
    wait_for(lambda: rows.count() >= 1, what="the stored alert row")
    page.locator(".hotline-alert-table .tabulator-row", has_text="ae_test").first.click()
    # Panel renders into shadow roots: find texts with get_by_text (it pierces them)
    wait_for(lambda: page.get_by_text("largest contributions mu1").count() == 1,
             what="loss contributions")
    wait_for(lambda: page.get_by_text("run 5, LS 3, event 42 - ae_test").count() == 1,
             what="event display title")
    page.screenshot(path=str(ARTIFACTS / "dashboard_selected_ae_alert.png"), full_page=True)

    # --- start a replay from the page; the alert table gains rows while it runs
    start = page.get_by_role("button", name="Start replay")
    assert start.is_enabled()
    before = rows.count()
    start.click()
    hub = dashboard_server["hub"]
    wait_for(lambda: hub.replay.events_read > 0, what="the replay to start")
    wait_for(lambda: rows.count() > before, timeout=30, what="new alert rows")
    wait_for(lambda: page.get_by_text("run 7: ").count() >= 1, what="replay progress text")
    hub.replay.wait(60)
    assert hub.replay.error == ""
    stored = dashboard_server["store"].count_alerts()
    wait_for(lambda: page.get_by_text(f"({stored:,} stored").count() == 1, timeout=10,
             what="the stored-alert count to catch up")
    # what the browser holds is what the server streamed: per-LS series strictly increasing
    # (a source created and streamed into within one update once arrived twice)
    series = page.evaluate(SERIES_JS)
    assert series, "no per-lumisection series in the browser"
    for lumis in series:
        assert all(a < b for a, b in zip(lumis, lumis[1:])), lumis
    # a freshly replayed classic alert can be inspected too (not the stored run-5 alert,
    # wherever the table's order puts it)
    # under load the table may re-render between the click and the selection: click again
    # until the display shows it (a lost click is the browser's, not the dashboard's)
    def shown() -> bool:
        if page.get_by_text("run 7, LS ").count() == 1:
            return True
        rows.filter(has_not_text="ae_test").first.click()
        return wait_until(lambda: page.get_by_text("run 7, LS ").count() == 1, 3.0)

    wait_for(shown, timeout=45, every=0.5, what="event display of a replayed alert")
    page.screenshot(path=str(ARTIFACTS / "dashboard_after_replay.png"), full_page=True)
    assert page.locator("#hotline-status").get_attribute("data-status") in (
        "green", "amber", "red")
    assert errors == [], errors
    assert first_render < 10, first_render  # the < 3 s figure is measured by the benchmark
    page.close()


def test_guest_is_read_only(browser, dashboard_server):
    url = dashboard_server["url"]
    page, errors = open_page(browser, url)
    page.goto(url + "/")
    page.wait_for_selector("canvas", timeout=20_000)
    start = page.get_by_role("button", name="Start replay")
    assert start.is_disabled()
    assert page.get_by_text("read-only view").count() == 1
    assert dashboard_server["hub"].replay.run is None
    assert errors == [], errors
    page.close()
