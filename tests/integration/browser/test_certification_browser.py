"""The certification card in a real headless Chromium: a logged-in override, a guest refused."""

from __future__ import annotations

import time

import pytest

from hotline.alerts.certification import flag_history, flags
from tests.integration.browser.conftest import ARTIFACTS, PASSWORD, wait_for
from tests.unit.dashboard.conftest import lumi_summary

pytestmark = pytest.mark.browser

# a guest forcing the widgets as a modified page could: enable them in the browser's Bokeh
# models, fill them and click (the server must still refuse)
FORCE_JS = """() => {
  let n = 0;
  for (const doc of Bokeh.documents)
    for (const m of doc._all_models.values()) {
      if (m.label === "Apply override" || m.placeholder === "e.g. 25-32,35"
          || m.placeholder === "why: what you checked") { m.disabled = false; n += 1; }
      if (m.placeholder === "e.g. 25-32,35") m.value = "1-2";
      if (m.placeholder === "why: what you checked") m.value = "guest was here";
    }
  return n;
}"""


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1300})  # own context
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def test_logged_in_override_is_stored_and_guest_is_refused(browser, dashboard_server):
    url, store = dashboard_server["url"], dashboard_server["store"]
    store.upsert_summaries([lumi_summary(9, ls) for ls in range(1, 7)])
    # --- a crew member logs in and overrides LS 2-3,5 with a comment
    page, errors = open_page(browser, url)
    page.goto(url + "/login")
    page.fill("input[name=username]", "shifter")
    page.fill("input[name=password]", PASSWORD)
    errors.clear()  # the login page itself is Panel's template, not ours
    page.click("button[type=submit], input[type=submit], #login-submit")
    page.wait_for_selector("#hotline-status", timeout=20_000)
    wait_for(lambda: page.get_by_text("run 9 is not certified yet").count() == 1,
             what="the certification card of run 9")
    apply = page.get_by_role("button", name="Apply override")
    assert apply.is_enabled()
    page.get_by_placeholder("e.g. 25-32,35").fill("2-3,5")
    page.get_by_role("button", name="bad", exact=True).click()
    page.get_by_placeholder("why: what you checked").fill("HV trip, see e-log 77")
    page.get_by_placeholder("why: what you checked").press("Enter")  # commit the value
    t0 = time.time()
    apply.click()
    got = wait_for(lambda: flags(store, 9), what="the override in the store")
    assert [(f.lumi, f.good, f.decided_by, f.comment) for f in got] == [
        (ls, False, "shifter", "HV trip, see e-log 77") for ls in (2, 3, 5)]
    assert all(t0 - 5 <= f.at <= time.time() for f in got)
    wait_for(lambda: page.get_by_text("certified bad by shifter").count() == 1,
             what="the confirmation line")
    rows = page.locator(".hotline-cert-flags .tabulator-row")
    wait_for(lambda: rows.count() == 2, what="the refreshed flags table")
    assert "HV trip, see e-log 77" in rows.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard_certification_override.png"),
                    full_page=True)
    assert errors == [], errors
    page.close()

    # --- a guest sees the flags, the controls are disabled, and forcing them changes nothing
    before = flag_history(store, 9)
    guest, errors = open_page(browser, url)
    guest.goto(url + "/")
    guest.wait_for_selector("#hotline-status", timeout=20_000)
    rows = guest.locator(".hotline-cert-flags .tabulator-row")
    wait_for(lambda: rows.count() == 2, what="the flags table for the guest")
    assert "shifter" in rows.first.inner_text()
    wait_for(lambda: guest.get_by_role("button", name="Apply override").count() == 1,
             what="the override button")
    assert guest.get_by_role("button", name="Apply override").is_disabled()
    assert guest.get_by_role("button", name="Assess and certify").is_disabled()
    assert guest.evaluate(FORCE_JS) == 3
    guest.get_by_role("button", name="Apply override").click()
    wait_for(lambda: guest.get_by_text("log in to certify lumisections").count() >= 1,
             what="the refusal")
    assert flag_history(store, 9) == before
    assert errors == [], errors
    guest.close()
