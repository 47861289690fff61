"""The run report opened from disk in headless Chromium with every network request refused."""

from __future__ import annotations

import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.dashboard.model_info import load_model_info
from hotline.dashboard.run_report import write_report
from tests.integration.browser.conftest import ARTIFACTS, wait_for
from tests.support.report_run import EVIL, REASON, lumi_flags, replay_run, run_status

pytestmark = pytest.mark.browser

FIGURES = ("timeline", "rates_ae", "rates_rules", "rates_input", "rates_quarantine")

#: the page position of lumisection ``ls`` in the middle of the status timeline
TIMELINE_AT = """(ls) => {
  for (const v of Object.values(Bokeh.index)) if (v.model.name === 'timeline') {
    const r = v.el.getBoundingClientRect();
    return [r.left + v.frame.x_scale.compute(ls), r.top + v.frame.y_scale.compute(0.5)];
  }
  return null;
}"""

RENDERED = """() => Object.values(Bokeh.index).map(v => v.model.name).filter(n => n)"""


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    with SQLiteAlertStore(replay_run(folder)) as store:
        thresholds, _, _ = load_model_info("ae_default")
        return write_report(folder / "run42.html", store, run_status(), lumi_flags(),
                            thresholds=thresholds)


def test_report_opens_offline_and_renders(browser, report_file):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    def route(r):
        requests.append(r.request.url)
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.goto(report_file.as_uri())
    page.wait_for_selector("canvas", timeout=20_000)
    page.wait_for_function(f"() => Object.keys(Bokeh.index).length >= {len(FIGURES)}",
                           timeout=20_000)
    # nothing but the file itself was asked for, and nothing failed
    assert requests == [report_file.as_uri()], requests
    assert errors == [], errors
    assert set(page.evaluate(RENDERED)) == set(FIGURES)
    assert page.locator("canvas").count() >= len(FIGURES)
    # the reasons, the golden ranges and the expert's comment are on the page, as text
    assert page.get_by_text(REASON).count() >= 2  # ranges and bad-lumisection tables
    assert page.locator("#golden-json").inner_text() == '{"42": [[1, 24], [33, 39]]}'
    assert page.get_by_text(f"checked {EVIL} & ok").count() == 1
    assert page.get_by_text("region phi01 eta00", exact=False).count() >= 1  # DQM, LS 30
    # hovering a lumisection of the timeline shows its status and reason in a tooltip;
    # the markup in the amber lumisection's reason stays text there too
    for ls, reason in ((30, REASON), (3, f"quarantined events {EVIL}")):
        before = page.get_by_text(reason).count()
        x, y = page.evaluate(TIMELINE_AT, ls)
        page.mouse.move(x, y)
        wait_for(lambda r=reason, n=before: page.get_by_text(r).count() == n + 1, timeout=5,
                 what=f"the tooltip of LS {ls}")
    assert page.evaluate("() => window.__pwned") is None and dialogs == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run_report.png"), full_page=True)
    page.close()
