"""The live L1 agreement view in a real headless Chromium, over a store written by real
emulated replays (the firmware-in-the-loop builds of ``tests/integration/conftest.py``, g++
emulation libraries loaded by ctypes).

Run 778 is the bundled demo run's 20,000 events in 8 lumisections of 2,500: LS 1-5 replayed
with the shipped build emulating half the events, LS 6 with the deliberately mis-quantised
build (deployed by mistake) emulating a fifth, which the divergence alarm catches in that
lumisection. With the page open, LS 7 arrives (the shipped build back) and LS 8 (emulation
off): the view follows live. The page must show the seeds, mark LS 6, explain it on hover
and on a click, follow the status strip's selection, and log no console error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from tests.integration.browser.conftest import (
    ARTIFACTS,
    PASSWORD,
    free_port,
    serve_and_wait,
    wait_for,
)
from tests.support.rootfiles import write_events
from tests.support.strip_select import PICK_JS

pytestmark = [pytest.mark.browser, pytest.mark.firmware]

RUN = 778
PER_LUMI = 2500
SEEDS = ["VLoose", "Loose", "Nominal", "Tight", "VTight"]
SHIPPED_FRACTION, NARROW_FRACTION = 0.5, 0.2
BAD_LUMI = 6

#: the page position of (lumisection, agreement) in the live L1 agreement plot
PLOT_AT = """([ls, y]) => {
  const seen = new Set();
  function find(v) {
    if (!v || seen.has(v)) return null;
    seen.add(v);
    if (v.model && v.model.name === 'l1_agreement_live') return v;
    for (const c of v.children()) { const f = find(c); if (f) return f; }
    return null;
  }
  for (const r of Object.values(Bokeh.index)) {
    const v = find(r);
    if (v) {
      const b = v.el.getBoundingClientRect();
      return [b.left + v.frame.x_scale.compute(ls), b.top + v.frame.y_scale.compute(y)];
    }
  }
  return null;
}"""

#: the plot's data as the browser holds it: seeds with their lumisections, alarm bands
PLOT_DATA = """() => {
  const out = {seeds: {}, bands: null};
  for (const doc of Bokeh.documents)
    for (const m of doc._all_models.values()) {
      const d = m.data;
      if (d === undefined) continue;
      if (d.seed !== undefined && d.fraction_text !== undefined && d.seed.length)
        out.seeds[d.seed[0]] = {lumi: Array.from(d.lumi), agreement: Array.from(d.agreement)};
      if (d.bottom !== undefined && d.alarm !== undefined) out.bands = Array.from(d.lumi);
    }
  return out;
}"""

#: the text of the tooltips on screen (their content lives in shadow roots)
TOOLTIPS = """() => {
  const out = [];
  function walk(n) {
    if (n.classList && n.classList.contains('bk-Tooltip')
        && getComputedStyle(n).display !== 'none') {
      const parts = [];
      const w = document.createTreeWalker(n.shadowRoot || n, NodeFilter.SHOW_TEXT);
      while (w.nextNode()) parts.push(w.currentNode.nodeValue.trim());
      out.push(parts.filter(x => x).join(' '));
    }
    for (const c of n.children || []) walk(c);
    if (n.shadowRoot) walk(n.shadowRoot);
  }
  walk(document.body);
  return out;
}"""



def _run_files(folder: Path) -> dict[str, Path]:
    """Run 778 as three real ROOT files: LS 1-6 (replayed before the page opens, LS 6 by
    the wrong build), LS 7, LS 8."""
    import uproot

    from hotline.config import package_path

    files = sorted(Path(package_path("hotline.data", "archive")).glob("run_000001/*.root"))
    arrays = ak.concatenate([uproot.open(f)["Events"].arrays() for f in files])
    ls = np.arange(len(arrays)) // PER_LUMI + 1
    arrays = ak.with_field(arrays, np.full(len(arrays), RUN, np.uint32), "run")
    arrays = ak.with_field(arrays, ls.astype(np.uint32), "luminosityBlock")
    arrays = ak.with_field(arrays, np.arange(1, len(arrays) + 1, dtype=np.uint64), "event")
    out = {}
    for name, keep in {"first": ls < BAD_LUMI, "bad": ls == BAD_LUMI, "ls7": ls == 7,
                       "ls8": ls == 8}.items():
        out[name] = write_events(folder / name / f"run_000{RUN}" / "nano_0000.root",
                                 arrays[keep])
    return out


def replay(store: Any, file: Path, build: Path | None, fraction: float = 1.0) -> None:
    """``hotline replay`` of ``file`` into ``store``, emulating ``build`` (None: off)."""
    from hotline.config import load_config
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    fw = {"emulate": str(build), "emulate_fraction": fraction} if build is not None else {}
    cfg = load_config(None, {"model": {"name": "none"}, "firmware": fw})
    ctx = PipelineContext.from_config(cfg)
    run_embedded(ReplaySource(files=[file], branches=ctx.branches()), ctx, store)


@pytest.fixture(scope="module")
def l1_room(tmp_path_factory, fresh_build, narrow_build) -> Iterator[dict[str, Any]]:
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.dashboard.hub import build_hub

    shipped, _ = fresh_build
    tmp = tmp_path_factory.mktemp("l1room")
    files = _run_files(tmp / "archive")
    store = SQLiteAlertStore(tmp / "alerts.db")
    replay(store, files["first"], shipped, SHIPPED_FRACTION)
    replay(store, files["bad"], narrow_build, NARROW_FRACTION)
    port = free_port()
    cfg = load_config(environ={}, cli={
        "dashboard": {"port": port, "basic_auth": PASSWORD, "cookie_secret": "test-secret"},
        "store": {"url": store.url}})
    hub = build_hub(cfg, store=store, replay=False)
    server, url = serve_and_wait(cfg, hub, port)
    try:
        yield {"url": url, "store": store, "files": files, "shipped": shipped,
               "narrow": narrow_build}
    finally:
        server.stop()
        store.close()


def test_live_view_marks_the_mis_quantised_lumisection(browser, l1_room):
    import json

    store = l1_room["store"]
    # what the real emulation wrote: the wrong build alarmed in its lumisection only
    sums = {s.lumi: s for s in store.summaries(run=RUN)}
    assert sorted(sums) == [1, 2, 3, 4, 5, 6]
    alarms = [a for a in store.iter_alerts(run=RUN, kind="dqm")
              if a.rule.startswith("l1_divergence:")]
    assert alarms and {a.lumi for a in alarms} == {BAD_LUMI}
    good = json.loads((l1_room["shipped"] / "l1_menu.json").read_text())["build"]
    bad = json.loads((l1_room["narrow"] / "l1_menu.json").read_text())["build"]
    assert good != bad and sums[BAD_LUMI].l1.header.build == bad
    alarmed_seeds = {a.payload["seed"] for a in alarms}

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(l1_room["url"] + "/")  # a guest looks
    page.wait_for_selector("#hotline-status", timeout=30_000)
    card = page.locator(".card", has=page.get_by_text("L1 emulation agreement per lumisection"))
    wait_for(lambda: card.count() == 1, timeout=60, what="the L1 agreement card")
    # the page's later stages are built after it: interact once the server is done with them
    wait_for(lambda: page.get_by_text("Audit log (who changed what)").count() >= 1, timeout=60,
             what="every stage of the page")
    builds = page.locator(".hotline-l1-compared")
    wait_for(lambda: bad in builds.inner_text(), timeout=30, what="the builds compared")
    text = builds.inner_text()
    assert f"build {good} (LS 1-5" in text and f"build {bad} (LS 6" in text
    assert "the build changed during the run" in text

    # every menu seed is drawn and listed; the alarm band sits on LS 6 only
    data = wait_for(lambda: (d := page.evaluate(PLOT_DATA)) and len(d["seeds"]) == 5 and d,
                    timeout=30, what="the agreement series")
    assert sorted(data["seeds"]) == sorted(SEEDS)
    assert all(v["lumi"] == [1, 2, 3, 4, 5, 6] for v in data["seeds"].values())
    assert data["bands"] == [BAD_LUMI]
    detail = page.locator(".hotline-l1-detail")
    for seed in SEEDS:
        assert detail.get_by_text(seed, exact=True).count() == 2  # one table per build
    assert "divergence alarms in LS 6" in page.locator(".hotline-l1-summary").inner_text()

    # hover on LS 6 at the alarmed seed's point: the tooltip says what and where
    seed = sorted(alarmed_seeds, key=SEEDS.index)[0]
    y = data["seeds"][seed]["agreement"][BAD_LUMI - 1]
    assert y < 0.999
    card.scroll_into_view_if_needed()
    x_px, y_px = page.evaluate(PLOT_AT, [BAD_LUMI, y])
    page.mouse.move(x_px, y_px)
    tips = wait_for(lambda: [t for t in page.evaluate(TOOLTIPS) if "seed:" in t],
                    timeout=10, what="the point's tooltip")
    tip = next(t for t in tips if f"seed: {seed}" in t)
    assert f"LS: {BAD_LUMI}" in tip and f"build: {bad}" in tip, tip
    assert f"alarm: {seed} red" in tip or f"alarm: {seed} amber" in tip, tip
    assert f"of {sums[BAD_LUMI].l1.n} emulated" in tip and "of 2500 good events" in tip, tip
    card.screenshot(path=str(ARTIFACTS / "l1_agreement_alarm.png"))

    # a click on the point selects LS 6 for the whole page: its numbers come up
    page.mouse.click(x_px, y_px)
    sel = page.locator(".hotline-l1-sel")
    wait_for(lambda: "LS 6" in sel.first.inner_text(), timeout=15, what="LS 6 selected")
    assert sel.count() == 1 and bad in sel.first.inner_text()
    n6 = sums[BAD_LUMI].l1.n
    assert f"{n6:,} of {PER_LUMI:,} good events emulated" in sel.first.inner_text()
    top_event = sorted(sums[BAD_LUMI].l1.top, key=lambda r: -abs(r[1] - r[2]))[0][0]
    assert page.locator(".hotline-l1-top").get_by_text(str(int(top_event)),
                                                       exact=True).count() == 1
    wait_for(lambda: page.get_by_text("showing LS 6").count() >= 1, timeout=10,
             what="the strip following the click")

    # live: LS 7 (the shipped build back) and LS 8 (emulation off) arrive
    replay(store, l1_room["files"]["ls7"], l1_room["shipped"], SHIPPED_FRACTION)
    replay(store, l1_room["files"]["ls8"], None)
    wait_for(lambda: page.evaluate(PLOT_DATA)["seeds"]["VTight"]["lumi"][-1] == 7,
             timeout=30, what="LS 7 on the plot")
    wait_for(lambda: "not emulated: LS 8" in builds.inner_text(), timeout=15,
             what="LS 8 named as not emulated")
    assert f"build {good} (LS 1-5, 7" in builds.inner_text()
    assert page.evaluate(PLOT_DATA)["bands"] == [BAD_LUMI]

    # the status strip's selection drives the view: LS 7 is the shipped build again
    assert page.evaluate(PICK_JS, [7]) == 8
    wait_for(lambda: "LS 7" in sel.first.inner_text(), timeout=15, what="LS 7 selected")
    assert good in sel.first.inner_text() and sel.count() == 1
    card.screenshot(path=str(ARTIFACTS / "l1_agreement_live.png"))
    assert errors == []
    page.close()
